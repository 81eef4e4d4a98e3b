'use strict';
/**
 * manifest.json holds every field Stream Deck's SDK v2 requires, and every file it names is
 * there: images as PNG at their size with an @2x twice as large, the code, the inspector page.
 */

const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { test } = require('node:test');

const { PLUGIN_DIR, PLUGIN_UUID } = require('./helpers');
const { ACTIONS } = require('../io.cascade.relay.sdPlugin/bin/lib/actions');

const manifest = JSON.parse(fs.readFileSync(path.join(PLUGIN_DIR, 'manifest.json'), 'utf8'));
const REVERSE_DNS = /^([a-z0-9\-_]+)(\.[a-z0-9\-_]+)+$/;

/** Width and height of a PNG, read from its IHDR chunk. */
function pngSize(file) {
  const bytes = fs.readFileSync(file);
  assert.deepEqual([...bytes.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10], `${file} is not a PNG`);
  assert.equal(bytes.subarray(12, 16).toString('latin1'), 'IHDR', `${file} has no IHDR first`);
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)];
}

function nonEmptyString(value, what) {
  assert.equal(typeof value, 'string', `${what} must be a string`);
  assert.ok(value.trim().length > 0, `${what} must not be empty`);
}

/** An image path as the manifest gives it: relative, no extension, PNG and @2x PNG present. */
function checkImage(name, size, what) {
  nonEmptyString(name, what);
  assert.ok(!path.extname(name), `${what} '${name}' must omit the file extension`);
  assert.ok(!path.isAbsolute(name) && !name.includes('..'), `${what} must stay inside the plugin`);
  const one = path.join(PLUGIN_DIR, `${name}.png`);
  const two = path.join(PLUGIN_DIR, `${name}@2x.png`);
  assert.ok(fs.existsSync(one), `${what}: ${name}.png is missing`);
  assert.ok(fs.existsSync(two), `${what}: ${name}@2x.png is missing`);
  assert.deepEqual(pngSize(one), [size, size], `${what}: ${name}.png size`);
  assert.deepEqual(pngSize(two), [2 * size, 2 * size], `${what}: ${name}@2x.png size`);
}

test('the manifest has every field the SDK requires, with the values SDK v2 expects', () => {
  for (const field of ['Name', 'Version', 'Author', 'UUID', 'Description', 'Icon', 'Category', 'CategoryIcon', 'CodePath']) {
    nonEmptyString(manifest[field], field);
  }
  assert.match(manifest.Version, /^\d+(\.\d+){2,3}$/, 'Version is a plain version number');
  assert.equal(manifest.UUID, PLUGIN_UUID);
  assert.match(manifest.UUID, REVERSE_DNS, 'UUID is lowercase reverse-DNS');
  assert.equal(manifest.SDKVersion, 2);
  nonEmptyString(manifest.Software && manifest.Software.MinimumVersion, 'Software.MinimumVersion');
  assert.match(manifest.Software.MinimumVersion, /^6\.\d+$/, 'a Stream Deck 6.x minimum version');
  assert.ok(Array.isArray(manifest.OS) && manifest.OS.length > 0, 'OS lists the systems');
  for (const os of manifest.OS) {
    assert.ok(['mac', 'windows'].includes(os.Platform), `OS.Platform ${os.Platform}`);
    nonEmptyString(os.MinimumVersion, `OS ${os.Platform} MinimumVersion`);
  }
  assert.equal(manifest.Nodejs && manifest.Nodejs.Version, '20');
  assert.ok(Array.isArray(manifest.Actions) && manifest.Actions.length > 0, 'Actions lists the actions');
});

test('the plugin folder is named after its UUID', () => {
  assert.equal(path.basename(PLUGIN_DIR), `${manifest.UUID}.sdPlugin`);
});

test('each action has a name, a UUID under the plugin, an icon, a tooltip, an inspector, controllers and states', () => {
  const seen = new Set();
  for (const action of manifest.Actions) {
    const what = `action ${action.Name}`;
    nonEmptyString(action.Name, 'action Name');
    nonEmptyString(action.UUID, `${what} UUID`);
    assert.match(action.UUID, REVERSE_DNS, `${what} UUID is lowercase reverse-DNS`);
    assert.ok(action.UUID.startsWith(`${manifest.UUID}.`), `${what} UUID starts with the plugin's`);
    assert.ok(!seen.has(action.UUID), `${what} UUID is unique`);
    seen.add(action.UUID);
    nonEmptyString(action.Icon, `${what} Icon`);
    nonEmptyString(action.Tooltip, `${what} Tooltip`);
    nonEmptyString(action.PropertyInspectorPath, `${what} PropertyInspectorPath`);
    assert.ok(Array.isArray(action.Controllers) && action.Controllers.length > 0, `${what} Controllers`);
    for (const controller of action.Controllers) assert.ok(['Keypad', 'Encoder'].includes(controller));
    assert.ok(Array.isArray(action.States) && [1, 2].includes(action.States.length), `${what} has 1 or 2 States`);
    for (const state of action.States) nonEmptyString(state.Image, `${what} state Image`);
  }
});

test("the manifest's actions are the four the plugin's code handles", () => {
  assert.deepEqual(
    manifest.Actions.map((a) => a.UUID).sort(),
    Object.values(ACTIONS).sort(),
  );
  const toggles = manifest.Actions.filter((a) => a.UUID.includes('toggle'));
  for (const action of toggles) {
    assert.equal(action.States.length, 2, `${action.Name} has an off and an on state`);
    // The plugin sets the state from the agent; Stream Deck must not flip it on a press.
    assert.equal(action.DisableAutomaticStates, true, `${action.Name} DisableAutomaticStates`);
  }
});

test('every image the manifest names is a PNG of its size, with an @2x twice as large', () => {
  checkImage(manifest.Icon, 256, 'Icon');
  checkImage(manifest.CategoryIcon, 28, 'CategoryIcon');
  for (const action of manifest.Actions) {
    checkImage(action.Icon, 20, `${action.Name} Icon`);
    for (const state of action.States) checkImage(state.Image, 72, `${action.Name} state image`);
  }
});

test('the code and every inspector page exist, and each page loads only files that exist', () => {
  const code = path.join(PLUGIN_DIR, manifest.CodePath);
  assert.ok(fs.existsSync(code), `CodePath ${manifest.CodePath} is missing`);
  for (const action of manifest.Actions) {
    const page = path.join(PLUGIN_DIR, action.PropertyInspectorPath);
    assert.match(page, /\.html?$/);
    assert.ok(fs.existsSync(page), `${action.PropertyInspectorPath} is missing`);
    const html = fs.readFileSync(page, 'utf8');
    const refs = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(refs.length > 0, 'the page loads its script');
    for (const ref of refs) {
      assert.ok(!/^[a-z]+:/i.test(ref), `${ref}: the page loads nothing from the network`);
      assert.ok(fs.existsSync(path.join(path.dirname(page), ref)), `${ref} is missing`);
    }
  }
});

test('the property inspector never calls the agent itself (it asks the plugin)', () => {
  const ui = path.join(PLUGIN_DIR, 'ui');
  for (const file of fs.readdirSync(ui).filter((f) => f.endsWith('.js'))) {
    const source = fs.readFileSync(path.join(ui, file), 'utf8');
    for (const banned of ['fetch(', 'XMLHttpRequest', 'EventSource', '/api/v1']) {
      assert.ok(!source.includes(banned), `ui/${file} must not use ${banned}`);
    }
    const sockets = [...source.matchAll(/new WebSocket\(([^)]*)\)/g)].map((m) => m[1]);
    assert.deepEqual(sockets, ['`ws://127.0.0.1:${port}`'], 'its one WebSocket is Stream Deck\'s');
  }
});

test('the plugin needs no installed packages: every require is a Node built-in or its own file', () => {
  const bin = path.join(PLUGIN_DIR, 'bin');
  assert.ok(!fs.existsSync(path.join(PLUGIN_DIR, 'node_modules')), 'no node_modules');
  const files = [];
  const walk = (dir) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.name.endsWith('.js')) files.push(full);
    }
  };
  walk(bin);
  assert.ok(files.length >= 2);
  for (const file of files) {
    const source = fs.readFileSync(file, 'utf8');
    for (const [, name] of source.matchAll(/require\('([^']+)'\)/g)) {
      if (name.startsWith('node:')) continue;
      assert.ok(name.startsWith('./'), `${path.relative(PLUGIN_DIR, file)} requires '${name}'`);
      assert.ok(fs.existsSync(path.resolve(path.dirname(file), `${name}.js`)), `${name}.js is missing`);
    }
  }
});
