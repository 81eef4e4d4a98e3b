"""What a person reads when an FFmpeg child ends: one meaningful line, no addresses."""

from __future__ import annotations

from agent.media.exit_reasons import classify_exit, meaningful_line


def test_context_tags_with_addresses_are_left_out() -> None:
    tail = [
        "[out#0/flv @ 0x55fcd2a3e4c0] Error muxing a packet",
        "[vost#0:0/libx264 @ 0x55a1] [enc:libx264 @ 0x55a2] Task finished with error code: "
        "-104 (Connection reset by peer)",
        "Conversion failed!",
    ]
    assert meaningful_line(tail) == "Task finished with error code: -104 (Connection reset by peer)"
    failure = classify_exit(1, tail)
    assert "0x" not in failure.reason
    assert failure.reason == (
        "exited with code 1: Task finished with error code: -104 (Connection reset by peer)"
    )
    assert not failure.permanent


def test_a_tag_without_an_address_and_brackets_inside_a_line_stay() -> None:
    assert meaningful_line(["[rtmp] Server error: [NetStream.Publish.BadName]"]) == (
        "[rtmp] Server error: [NetStream.Publish.BadName]"
    )


def test_a_summary_gives_way_to_the_line_that_says_what_was_wrong() -> None:
    tail = [
        "[out#0/flv @ 0x1] Unrecognized option 'bogus'.",
        "Error splitting the argument list: Option not found",
    ]
    failure = classify_exit(8, tail)
    assert failure.reason == "exited with code 8: Unrecognized option 'bogus'."
    assert failure.permanent


def test_a_killed_child_with_nothing_said() -> None:
    assert classify_exit(-9, ["", "Exiting normally, received signal 2."]).reason == (
        "was killed by signal 9"
    )
    assert classify_exit(None, []).reason == "ended"
