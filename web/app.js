// The face2scene page: plain JS over the JSON API of docs/server.md (no build step).
'use strict';
const $ = (id) => document.getElementById(id);
const state = {
  photo: null, photoUrl: null, photoImg: null,  // the chosen file and its decoded <img>
  people: [],                                  // [{name, files, el}]
  faces: [],                                   // the last detect/restore job's faces
  pins: {},                                    // face index -> person name ("" = automatic)
  job: null, polling: null, resultUrl: null,
};

// ---- API ------------------------------------------------------------------------------------------
async function api(method, path, body) {
  const r = await fetch(path, { method, body });
  let data = null;
  try { data = await r.json(); } catch (e) { /* the result PNG, or an empty body */ }
  if (!r.ok) {
    const err = new Error((data && data.error) || `${r.status} ${r.statusText}`);
    err.status = r.status;
    err.retryAfter = r.headers.get('Retry-After');
    throw err;
  }
  return data;
}
function form(options, withRefs) {
  const f = new FormData();
  f.append('image', state.photo, state.photo.name);
  f.append('options', new Blob([JSON.stringify(options)], { type: 'application/json' }));
  if (withRefs) for (const p of namedPeople()) for (const file of p.files) f.append('ref:' + p.name, file, file.name);
  return f;
}
async function waitFor(id, onProgress) {
  for (;;) {
    let j;
    try { j = await api('GET', `/api/jobs/${id}`); } catch (e) {
      if (e.status === 404) return { state: 'cancelled' };  // deleted (cancel) or expired
      throw e;
    }
    onProgress && onProgress(j);
    if (j.state === 'done' || j.state === 'failed' || j.state === 'cancelled') return j;
    await new Promise((r) => setTimeout(r, 600));
  }
}
function showError(msg) { const e = $('error'); e.textContent = msg || ''; e.hidden = !msg; }

// ---- the photo and its faces ----------------------------------------------------------------------
function dropZone(label, input, onFiles) {
  input.addEventListener('change', () => { if (input.files.length) onFiles([...input.files]); input.value = ''; });
  label.addEventListener('dragover', (e) => { e.preventDefault(); label.classList.add('over'); });
  label.addEventListener('dragleave', () => label.classList.remove('over'));
  label.addEventListener('drop', (e) => {
    e.preventDefault(); label.classList.remove('over');
    const files = [...e.dataTransfer.files].filter((f) => /^image\//.test(f.type) || /\.(png|jpe?g)$/i.test(f.name));
    if (files.length) onFiles(files);
  });
}

async function setPhoto(file) {
  state.photo = file; state.faces = []; state.pins = {};
  if (state.photoUrl) URL.revokeObjectURL(state.photoUrl);
  state.photoUrl = URL.createObjectURL(file);
  const img = $('preview-img');
  img.src = state.photoUrl;
  await img.decode().catch(() => {});
  state.photoImg = img;
  $('preview').hidden = false;
  $('photo-drop-text').innerHTML = `<b>${escapeHtml(file.name)}</b><br><small>drop or click to change</small>`;
  $('restore-btn').disabled = false;
  drawBoxes(); renderAssign(); showError('');
  $('faces-status').textContent = 'Looking for faces…';
  try {
    const j = await api('POST', '/api/jobs', form({ mode: 'detect' }, false));
    const done = await waitFor(j.id);
    api('DELETE', `/api/jobs/${j.id}`).catch(() => {});
    if (state.photo !== file) return;  // another photo was picked meanwhile
    if (done.state !== 'done') throw new Error(done.error || 'face detection ' + done.state);
    state.faces = done.faces;
    $('faces-status').textContent = facesSentence(done.faces.length);
    drawBoxes(); renderAssign();
  } catch (e) {
    if (state.photo === file) { $('faces-status').textContent = ''; showError(e.message); }
  }
}
function facesSentence(n) {
  return n === 0 ? 'No face found: the photo will be restored blind.'
    : `${n} face${n > 1 ? 's' : ''} found (numbered largest first).`;
}
function drawBoxes() {
  const box = $('preview-box');
  box.querySelectorAll('.fbox').forEach((b) => b.remove());
  const img = state.photoImg;
  if (!img || !img.naturalWidth) return;
  for (const f of state.faces) {
    const [x0, y0, x1, y1] = f.box;
    const d = document.createElement('div');
    d.className = 'fbox' + (f.status && f.status.startsWith('skipped') ? ' skipped' : '');
    Object.assign(d.style, {
      left: (100 * x0 / img.naturalWidth) + '%', top: (100 * y0 / img.naturalHeight) + '%',
      width: (100 * (x1 - x0) / img.naturalWidth) + '%', height: (100 * (y1 - y0) / img.naturalHeight) + '%',
    });
    const who = state.pins[f.index] || f.person;
    d.innerHTML = `<span>${f.index}${who ? ' · ' + escapeHtml(who) : ''}</span>`;
    box.appendChild(d);
  }
}

// ---- people (references) and pins -----------------------------------------------------------------
function namedPeople() { return state.people.filter((p) => p.name && p.files.length); }
function addPerson() {
  const el = $('person-tpl').content.firstElementChild.cloneNode(true);
  const p = { name: '', files: [], el };
  const name = el.querySelector('.person-name');
  name.value = 'Person ' + (state.people.length + 1);
  p.name = name.value;
  name.addEventListener('input', () => {
    p.name = name.value.trim().replace(/[^A-Za-z0-9 _.\-]/g, '');
    renderAssign();
  });
  dropZone(el.querySelector('.drop'), el.querySelector('input[type=file]'), (files) => {
    p.files.push(...files);
    const thumbs = el.querySelector('.thumbs');
    for (const f of files) { const i = document.createElement('img'); i.src = URL.createObjectURL(f); i.alt = f.name; thumbs.appendChild(i); }
    renderAssign();
  });
  el.querySelector('.remove').addEventListener('click', () => {
    state.people = state.people.filter((q) => q !== p); el.remove(); renderAssign();
  });
  state.people.push(p);
  $('people').appendChild(el);
  return p;
}
function personOptions(selected) {
  const names = namedPeople().map((p) => p.name);
  return ['<option value="">automatic</option>']
    .concat(names.map((n) => `<option value="${escapeHtml(n)}"${n === selected ? ' selected' : ''}>${escapeHtml(n)}</option>`))
    .join('');
}
function renderAssign() {
  const box = $('face-assign');
  const people = namedPeople();
  for (const k of Object.keys(state.pins)) if (!people.some((p) => p.name === state.pins[k])) delete state.pins[k];
  box.hidden = !(people.length && state.faces.length);
  box.innerHTML = '';
  if (box.hidden) return;
  for (const f of state.faces) {
    const l = document.createElement('label');
    l.innerHTML = `Face ${f.index} <select data-face="${f.index}">${personOptions(state.pins[f.index])}</select>`;
    l.querySelector('select').addEventListener('change', (e) => setPin(f.index, e.target.value));
    box.appendChild(l);
  }
}
function setPin(index, name) {
  if (name) state.pins[index] = name; else delete state.pins[index];
  document.querySelectorAll(`select[data-face="${index}"]`).forEach((s) => { s.value = name; });
  drawBoxes();
}

// ---- restoring ----------------------------------------------------------------------------------
const STAGES = { queued: 'waiting in the queue', load: 'loading', detect: 'finding faces', identity: 'matching people',
  faces: 'restoring faces', oracle: 'reading the degradation', scene: 'restoring the photo', paste: 'pasting faces',
  write: 'writing the result', done: 'done' };
async function restore() {
  if (!state.photo) return;
  showError('');
  const options = { scale: +$('opt-scale').value, paste_faces: $('opt-paste').checked, blind: $('opt-blind').checked };
  const minPaste = +$('opt-blind-paste-min').value;
  if (minPaste > 0) options.blind_paste_min = minPaste;
  // One weight for faces with and without references, as the defaults are (the server refuses
  // values outside [0, 1] with a message).
  const fidelity = parseFloat($('opt-face-fidelity').value);
  if (Number.isFinite(fidelity)) options.blind_face_fidelity = options.ref_face_fidelity = fidelity;
  if (Object.keys(state.pins).length) options.face_refs = { ...state.pins };
  $('restore-btn').disabled = true;
  $('progress').hidden = false; setProgress(0, 'uploading');
  try {
    const j = await api('POST', '/api/jobs', form(options, true));
    state.job = j.id;
    const done = await waitFor(j.id, (s) => {
      const p = s.progress || {};
      let text = STAGES[s.state === 'queued' ? 'queued' : p.stage] || p.stage;
      if (s.state === 'queued' && s.queue_position) text += ` (${s.queue_position} ahead)`;
      if (p.stage === 'scene' && p.total > 1) text += ` · tile ${p.done}/${p.total}`;
      setProgress(p.fraction || 0, text);
    });
    if (done.state === 'failed') throw new Error(done.error);
    if (done.state !== 'done') { setProgress(0, done.state); return; }
    await showResult(done);
  } catch (e) {
    showError(e.status === 503 ? `${e.message} (retry in ${e.retryAfter || 'a few'} s)` : e.message);
  } finally {
    $('restore-btn').disabled = false;
    $('progress').hidden = true;
  }
}
function setProgress(f, text) { $('progress-fill').style.width = Math.round(100 * f) + '%'; $('progress-text').textContent = text; }
async function cancel() { if (state.job) await api('DELETE', `/api/jobs/${state.job}`).catch(() => {}); }

async function showResult(j) {
  const r = await fetch(j.result_url);
  if (!r.ok) throw new Error('the result could not be fetched');
  const blob = await r.blob();
  if (state.resultUrl) URL.revokeObjectURL(state.resultUrl);
  state.resultUrl = URL.createObjectURL(blob);
  const after = $('after-img'), before = $('before-img');
  after.src = state.resultUrl; before.src = state.photoUrl;
  await Promise.all([after.decode(), before.decode()]).catch(() => {});
  $('download').href = state.resultUrl;
  $('download').download = state.photo.name.replace(/\.[^.]+$/, '') + '_restored.png';
  $('result').hidden = false;
  state.faces = j.faces;
  drawBoxes(); renderAssign();

  const d = j.degradation || {};
  $('degradation-words').textContent = d.words || '—';
  $('degradation-detail').textContent = j.face_code
    ? `Read by FaDeX from ${j.faces_restored} restored face${j.faces_restored === 1 ? '' : 's'} (${j.code_rule}); the whole photo was restored conditioned on it.`
    : 'No face code: the photo was restored by the blind scene restorer.';
  viewer.reset(after.naturalWidth, after.naturalHeight);
  renderFaces(j);
  const t = j.timings_s || {};
  $('timings').innerHTML = Object.entries(t).map(([k, v]) => `<div><dt>${k.replace('_', '-')}</dt><dd>${v.toFixed(2)} s</dd></div>`).join('')
    + `<div><dt>output</dt><dd>${j.width}×${j.height}</dd></div>`;
  $('warnings').innerHTML = (j.warnings || []).map((w) => `<li>${escapeHtml(w)}</li>`).join('');
  $('result').scrollIntoView({ behavior: 'smooth', block: 'start' });
}

function renderFaces(j) {
  const box = $('faces');
  box.innerHTML = '';
  if (!j.faces.length) { box.innerHTML = '<p class="muted">No face was found in this photo.</p>'; }
  const scale = j.scale || 1;
  for (const f of j.faces) {
    const el = document.createElement('div');
    el.className = 'face';
    const who = f.person ? `${escapeHtml(f.person)}${f.pinned ? ' (pinned)' : ''}`
      : (f.status === 'restored' ? (f.pasted === false ? 'no reference, small: the scene restorer\'s face kept' : 'no reference: restored blind') : '');
    const dist = f.match_distance != null ? `match distance ${f.match_distance.toFixed(2)}` : '';
    const id = f.identity_shift != null ? `identity shift ${f.identity_shift.toFixed(2)}` : '';
    el.innerHTML = `<div class="pair"><canvas width="160" height="160"></canvas><canvas width="160" height="160"></canvas></div>
      <div class="cap"><span>before</span><span>after</span></div>
      <div><span class="who">Face ${f.index}</span> · ${who || escapeHtml(f.status)}</div>
      <div class="meta">${[f.status !== 'restored' ? escapeHtml(f.status) : '', dist, id].filter(Boolean).join(' · ')}</div>
      ${f.degradation ? `<div class="meta">reads: ${escapeHtml(f.degradation)}</div>` : ''}
      <label class="meta">person <select data-face="${f.index}">${personOptions(state.pins[f.index])}</select></label>`;
    el.querySelector('select').addEventListener('change', (e) => { setPin(f.index, e.target.value); $('again-btn').hidden = false; });
    if (!namedPeople().length) el.querySelector('label').hidden = true;
    const [c0, c1] = el.querySelectorAll('canvas');
    crop(c0, $('before-img'), f.box, 1);
    crop(c1, $('after-img'), f.box, scale);
    el.addEventListener('dblclick', () => viewer.focus(f.box, scale));
    box.appendChild(el);
  }
}
// A square around the face box (1.5× its side), drawn into a canvas.
function crop(canvas, img, [x0, y0, x1, y1], s) {
  const side = 1.5 * Math.max(x1 - x0, y1 - y0), cx = (x0 + x1) / 2, cy = (y0 + y1) / 2;
  const k = img === $('before-img') ? img.naturalWidth / (state.photoImg.naturalWidth || img.naturalWidth) : 1;
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingQuality = 'high';
  ctx.fillStyle = '#ddd'; ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(img, (cx - side / 2) * s * k, (cy - side / 2) * s * k, side * s * k, side * s * k, 0, 0, canvas.width, canvas.height);
}

// ---- the before/after viewer: zoom, pan, split ----------------------------------------------------
const viewer = (() => {
  const el = $('viewer'), stage = $('stage'), before = $('before-img'), after = $('after-img'), div = $('divider');
  let W = 1, H = 1, z = 1, tx = 0, ty = 0, split = 0.5, fitted = true;
  const pointers = new Map();
  let drag = null;
  function apply() {
    stage.style.transform = `translate(${tx}px, ${ty}px) scale(${z})`;
    for (const i of [before, after]) { i.style.width = W + 'px'; i.style.height = H + 'px'; }
    const vx = split * el.clientWidth;
    div.style.left = (vx - 1) + 'px';
    const cut = Math.min(W, Math.max(0, (vx - tx) / z));
    before.style.clipPath = `inset(0 ${W - cut}px 0 0)`;
    // Below 1:1 the browser's smoothing is fine; above it, show pixels as they are.
    after.style.imageRendering = z >= 2 ? 'pixelated' : 'auto';
  }
  // The viewer takes the photo's shape (up to 75% of the window), so a fitted photo fills it.
  function size() {
    el.style.height = Math.round(Math.max(220, Math.min(window.innerHeight * 0.75, 820, el.clientWidth * H / W))) + 'px';
  }
  function fit() {
    size(); fitted = true;
    z = Math.min(el.clientWidth / W, el.clientHeight / H);
    tx = (el.clientWidth - W * z) / 2; ty = (el.clientHeight - H * z) / 2; apply();
  }
  function zoomAt(f, px, py) {
    const nz = Math.min(16, Math.max(0.02, z * f));
    fitted = false;
    tx = px - (px - tx) * nz / z; ty = py - (py - ty) * nz / z; z = nz; apply();
  }
  el.addEventListener('wheel', (e) => {
    e.preventDefault();
    const r = el.getBoundingClientRect();
    zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  el.addEventListener('pointerdown', (e) => {
    el.setPointerCapture(e.pointerId);
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
    const onDivider = e.target === div || div.contains(e.target);
    drag = onDivider ? 'split' : 'pan';
    el.classList.toggle('panning', drag === 'pan');
  });
  el.addEventListener('pointermove', (e) => {
    if (!pointers.has(e.pointerId)) return;
    const prev = pointers.get(e.pointerId);
    const r = el.getBoundingClientRect();
    if (pointers.size === 2) {  // pinch: zoom about the midpoint
      const [a, b] = [...pointers.values()];
      const other = a === prev ? b : a;
      const d0 = Math.hypot(prev.x - other.x, prev.y - other.y), d1 = Math.hypot(e.clientX - other.x, e.clientY - other.y);
      if (d0 > 0) zoomAt(d1 / d0, (e.clientX + other.x) / 2 - r.left, (e.clientY + other.y) / 2 - r.top);
    } else if (drag === 'split') {
      split = Math.min(1, Math.max(0, (e.clientX - r.left) / el.clientWidth)); apply();
    } else {
      tx += e.clientX - prev.x; ty += e.clientY - prev.y; fitted = false; apply();
    }
    pointers.set(e.pointerId, { x: e.clientX, y: e.clientY });
  });
  const up = (e) => { pointers.delete(e.pointerId); if (!pointers.size) { drag = null; el.classList.remove('panning'); } };
  el.addEventListener('pointerup', up); el.addEventListener('pointercancel', up);
  window.addEventListener('resize', () => (fitted ? fit() : apply()));
  $('zoom-fit').onclick = fit;
  $('zoom-1').onclick = () => zoomAt(1 / z, el.clientWidth / 2, el.clientHeight / 2);
  $('zoom-in').onclick = () => zoomAt(1.5, el.clientWidth / 2, el.clientHeight / 2);
  $('zoom-out').onclick = () => zoomAt(1 / 1.5, el.clientWidth / 2, el.clientHeight / 2);
  return {
    reset(w, h) { W = w || 1; H = h || 1; split = 0.5; fit(); },
    focus([x0, y0, x1, y1], s) {  // a face at full resolution (or as large as fits)
      z = Math.min(4, Math.max(1, el.clientHeight / (3 * (y1 - y0) * s)));
      tx = el.clientWidth / 2 - (x0 + x1) / 2 * s * z; ty = el.clientHeight / 2 - (y0 + y1) / 2 * s * z;
      split = 0.5; fitted = false; apply(); el.scrollIntoView({ behavior: 'smooth', block: 'center' });
    },
  };
})();

function escapeHtml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

// ---- wiring ---------------------------------------------------------------------------------------
dropZone($('photo-drop'), $('photo-input'), (files) => setPhoto(files[0]));
$('add-person').addEventListener('click', addPerson);
$('restore-btn').addEventListener('click', restore);
$('again-btn').addEventListener('click', () => { $('again-btn').hidden = true; restore(); });
$('cancel-btn').addEventListener('click', cancel);
api('GET', '/api/info').then((i) => {
  $('server-info').textContent = `face2scene ${i.version} · ${i.device || 'cpu'}` + (i.identity ? '' : ' · no identity model: references unavailable');
  if (!i.identity) $('add-person').disabled = true;
}).catch(() => {});
