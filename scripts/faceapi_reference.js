#!/usr/bin/env node
// Reference outputs of @vladmandic/face-api's own networks, run by TensorFlow.js on its
// pure-JavaScript CPU backend (no tfjs-node, no native code, no WASM): 128-D face descriptors of
// its FaceRecognitionNet, or (--ssd) the faces its SSD MobileNet v1 detector finds. face2scene's
// LibTorch ports (src/models/face_recognition_net.cpp, ssd_mobilenet.cpp) are checked against these.
//
// Usage: node scripts/faceapi_reference.js [--npm DIR] OUT.json CROP.ppm...
//        node scripts/faceapi_reference.js [--npm DIR] --ssd OUT.json IMAGE.ppm
//   DIR: the npm prefix where scripts/install_faceapi.sh --with-reference installed face-api and
//        @tensorflow/tfjs (default $F2S_CACHE/npm-faceapi or ~/.cache/face2scene/npm-faceapi).
//   CROP.ppm: binary PPM (P6, 8-bit) crops of exactly 150x150, e.g. written by
//        `face2scene identity --save-crops DIR` so both sides see the very same pixels.
// Writes {"backend":"cpu", "tfjs":..., "faceapi":..., "input_sums":{"<stem>":sum of bytes},
//         "descriptors":{"<file stem>":[128 floats]}}.
//   --ssd: IMAGE.ppm of exactly 512x512 (so face-api neither pads nor resizes); writes {"tfjs":...,
//        "faceapi":..., "detections":[{"box":[x0,y0,x1,y1] (pixels), "score":p}, ...]}, every face
//        with probability >= 0.05 after face-api's non-maximum suppression (IoU 0.5).
'use strict';

const fs = require('fs');
const path = require('path');
const os = require('os');

function readPpm(file) {
  const buf = fs.readFileSync(file);
  // Header: "P6" whitespace width whitespace height whitespace maxval single-whitespace data.
  let pos = 0;
  const tokens = [];
  while (tokens.length < 4) {
    while (pos < buf.length && /\s/.test(String.fromCharCode(buf[pos]))) pos++;
    if (buf[pos] === 0x23) { // comment
      while (pos < buf.length && buf[pos] !== 0x0a) pos++;
      continue;
    }
    let start = pos;
    while (pos < buf.length && !/\s/.test(String.fromCharCode(buf[pos]))) pos++;
    tokens.push(buf.toString('ascii', start, pos));
  }
  pos++; // the single whitespace byte after maxval
  const [magic, w, h, maxval] = [tokens[0], +tokens[1], +tokens[2], +tokens[3]];
  if (magic !== 'P6' || maxval !== 255) throw new Error(`${file}: expected an 8-bit binary PPM (P6, maxval 255)`);
  const data = buf.subarray(pos, pos + w * h * 3);
  if (data.length !== w * h * 3) throw new Error(`${file}: truncated pixel data`);
  return { width: w, height: h, data };
}

function writeJson(out, result) {
  fs.writeFileSync(out + '.tmp', JSON.stringify(result, null, 1));
  fs.renameSync(out + '.tmp', out);
}

async function detect(faceapi, tf, pkg, out, file) {
  await tf.ready();
  await faceapi.nets.ssdMobilenetv1.loadFromDisk(path.join(pkg, 'model'));
  const img = readPpm(file);
  if (img.width !== 512 || img.height !== 512) throw new Error(`${file}: must be 512x512`);
  const t = tf.tensor3d(Int32Array.from(img.data), [512, 512, 3], 'int32');
  const found = await faceapi.nets.ssdMobilenetv1.locateFaces(t, { minConfidence: 0.05, maxResults: 200 });
  const detections = found.map((f) => ({
    box: [f.box.x, f.box.y, f.box.x + f.box.width, f.box.y + f.box.height],
    score: f.score,
  }));
  writeJson(out, { tfjs: tf.version_core, faceapi: require(path.join(pkg, 'package.json')).version, detections });
  console.log(`wrote ${detections.length} detections to ${out}`);
}

async function main() {
  const args = process.argv.slice(2);
  const cache = process.env.F2S_CACHE || path.join(os.homedir(), '.cache', 'face2scene');
  let npmDir = path.join(cache, 'npm-faceapi');
  if (args[0] === '--npm') { npmDir = args[1]; args.splice(0, 2); }
  const ssd = args[0] === '--ssd';
  if (ssd) args.splice(0, 1);
  if (args.length < 2 || (ssd && args.length !== 2)) {
    console.error('usage: node scripts/faceapi_reference.js [--npm DIR] [--ssd] OUT.json CROP.ppm...');
    process.exit(2);
  }
  const [out, ...inputs] = args;
  const pkg = path.join(npmDir, 'node_modules', '@vladmandic', 'face-api');
  // The node-wasm bundle requires the pure-JS @tensorflow/tfjs; we select its 'cpu' backend.
  const faceapi = require(path.join(pkg, 'dist', 'face-api.node-wasm.js'));
  const tf = faceapi.tf;
  if (!(await tf.setBackend('cpu'))) throw new Error('tfjs cpu backend unavailable');
  if (ssd) return detect(faceapi, tf, pkg, out, inputs[0]);
  await tf.ready();
  await faceapi.nets.faceRecognitionNet.loadFromDisk(path.join(pkg, 'model'));

  const descriptors = {};
  const inputSums = {};  // sum of the 150*150*3 bytes: lets the C++ test tell a crop change from a net change
  for (const file of inputs) {
    const img = readPpm(file);
    if (img.width !== 150 || img.height !== 150) throw new Error(`${file}: crops must be 150x150`);
    const t = tf.tensor3d(Int32Array.from(img.data), [150, 150, 3], 'int32');
    const d = await faceapi.nets.faceRecognitionNet.computeFaceDescriptor(t);
    t.dispose();
    const stem = path.basename(file, path.extname(file));
    descriptors[stem] = Array.from(d);
    inputSums[stem] = img.data.reduce((a, v) => a + v, 0);
  }
  const result = {
    backend: tf.getBackend(),
    tfjs: tf.version_core,
    faceapi: require(path.join(pkg, 'package.json')).version,
    input_sums: inputSums,
    descriptors,
  };
  writeJson(out, result);
  console.log(`wrote ${Object.keys(descriptors).length} descriptors to ${out} (tfjs ${result.tfjs}, backend ${result.backend})`);
}

main().catch((e) => { console.error(e.message || e); process.exit(1); });
