#!/usr/bin/env bash
# Make Cascade's disk image from the Cascade.app that build/build.py made, and, when asked,
# sign it and have Apple notarise it. See SIGNING.md for the whole signing story.
#
#   installers/macos/make_dmg.sh [APP] [OUT_DIR]      (defaults: dist/Cascade.app, dist)
#
# Environment:
#   CASCADE_CODESIGN_IDENTITY  "Developer ID Application: Name (TEAMID)". The app must have been
#                              built with the same variable set (PyInstaller then signs every
#                              binary with the hardened runtime); this script checks that, and
#                              signs the image.
#   NOTARY_PROFILE             a notarytool keychain profile (xcrun notarytool
#                              store-credentials): submit the image, wait, staple the ticket.
#
# The image holds Cascade.app and a link to /Applications to drag it onto. Its name says the
# version (CFBundleShortVersionString) and the architecture of the app's executable.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
APP="${1:-$ROOT/dist/Cascade.app}"
OUT="${2:-$ROOT/dist}"
IDENTITY="${CASCADE_CODESIGN_IDENTITY:-}"
NOTARY_PROFILE="${NOTARY_PROFILE:-}"

fail() {
    echo "make_dmg: $*" >&2
    exit 1
}

[ -d "$APP/Contents/MacOS" ] || fail "$APP is not an app bundle: run python build/build.py first"
[ -z "$NOTARY_PROFILE" ] || [ -n "$IDENTITY" ] ||
    fail "notarising needs a signed app: set CASCADE_CODESIGN_IDENTITY too"

VERSION="$(plutil -extract CFBundleShortVersionString raw -o - "$APP/Contents/Info.plist")"
EXECUTABLE="$(plutil -extract CFBundleExecutable raw -o - "$APP/Contents/Info.plist")"
ARCH="$(lipo -archs "$APP/Contents/MacOS/$EXECUTABLE" | tr ' ' '+')"
DMG="$OUT/Cascade-$VERSION-macos-$ARCH.dmg"

if [ -n "$IDENTITY" ]; then
    # An ad-hoc signature (a build without the identity) cannot be notarised.
    codesign --verify --deep --strict --verbose=2 "$APP"
    if codesign --display --verbose=2 "$APP" 2>&1 | grep -q "Signature=adhoc"; then
        fail "$APP is signed ad hoc: rebuild it with CASCADE_CODESIGN_IDENTITY set"
    fi
fi

STAGE="$(mktemp -d "${TMPDIR:-/tmp}/cascade-dmg.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT
ditto "$APP" "$STAGE/Cascade.app"          # keeps symbolic links, modes and signatures
ln -s /Applications "$STAGE/Applications"
mkdir -p "$OUT"
hdiutil create -volname "Cascade $VERSION" -srcfolder "$STAGE" -fs HFS+ -format UDZO -ov "$DMG"

if [ -n "$IDENTITY" ]; then
    codesign --force --timestamp --sign "$IDENTITY" "$DMG"
fi
if [ -n "$NOTARY_PROFILE" ]; then
    xcrun notarytool submit "$DMG" --keychain-profile "$NOTARY_PROFILE" --wait
    xcrun stapler staple "$DMG"
    xcrun stapler validate "$DMG"
    spctl --assess --type open --context context:primary-signature --verbose=2 "$DMG"
fi
echo "built $DMG"
