// The drawing page of `mnist serve`: draw on the canvas (pointer events: mouse, pen, touch) or
// upload a file; the image goes to POST /api/read as it is, and the answer is shown as the
// number, each digit's 28x28 input and its ten probabilities.
'use strict';

const pad = document.getElementById('pad');
const ctx = pad.getContext('2d');
const numberOut = document.getElementById('number');
const digitsOut = document.getElementById('digits');
const statusOut = document.getElementById('status');
const preview = document.getElementById('preview');
// Stroke width: MNIST's strokes are about a tenth of a digit's height; a digit drawn across
// most of the 240-pixel canvas gets about that with 18 pixels.
const BRUSH = 18;
// Requests wait for a pause this long while drawing, so a stroke is not sent 60 times a second.
const DEBOUNCE_MS = 150;

let drawing = false;
let last = null;
let hasInk = false;
let timer = null;
// Counts the changes to what the page shows (ink, clear, upload). A request remembers the count it
// was made at, and its answer is shown only if nothing changed since: an answer to an older
// drawing never replaces a newer one, and `busy` lasts until the latest drawing is answered.
let version = 0;

function clearPad() {
  ctx.fillStyle = '#fff';
  ctx.fillRect(0, 0, pad.width, pad.height);
  hasInk = false;
}

function showNothing() {
  numberOut.textContent = '';
  digitsOut.replaceChildren();
  statusOut.textContent = '';
  document.body.dataset.state = 'idle';
}

function point(event) {
  const r = pad.getBoundingClientRect();
  return [(event.clientX - r.left) * pad.width / r.width,
          (event.clientY - r.top) * pad.height / r.height];
}

function line(from, to) {
  ctx.strokeStyle = '#000';
  ctx.lineWidth = BRUSH;
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  ctx.beginPath();
  ctx.moveTo(from[0], from[1]);
  ctx.lineTo(to[0], to[1]);
  ctx.stroke();
  hasInk = true;
}

pad.addEventListener('pointerdown', (event) => {
  event.preventDefault();
  pad.setPointerCapture(event.pointerId);
  if (!preview.hidden) { preview.hidden = true; }
  drawing = true;
  last = point(event);
  line(last, last);
  schedule();
});

pad.addEventListener('pointermove', (event) => {
  if (!drawing) { return; }
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of (events.length ? events : [event])) {
    const p = point(e);
    line(last, p);
    last = p;
  }
  schedule();
});

function endStroke() {
  if (!drawing) { return; }
  drawing = false;
  clearTimeout(timer);
  sendCanvas();
}
pad.addEventListener('pointerup', endStroke);
pad.addEventListener('pointercancel', endStroke);

// data-state on <body>: idle, busy (ink not yet answered), done or error; tests wait on it.
function schedule() {
  version += 1;
  document.body.dataset.state = 'busy';
  clearTimeout(timer);
  timer = setTimeout(sendCanvas, DEBOUNCE_MS);
}

function sendCanvas() {
  if (!hasInk) { return; }
  // Counted now, not in toBlob's callback: until then an answer to the previous drawing would
  // still look current.
  const mine = version;
  document.body.dataset.state = 'busy';
  pad.toBlob((blob) => { if (blob) { send(blob, 'image/png', mine); } }, 'image/png');
}

document.getElementById('clear').addEventListener('click', () => {
  clearTimeout(timer);
  version += 1; // answers still on their way are now stale
  clearPad();
  preview.hidden = true;
  showNothing();
});

document.getElementById('upload').addEventListener('change', (event) => {
  const file = event.target.files[0];
  if (!file) { return; }
  clearTimeout(timer);
  clearPad();
  preview.src = URL.createObjectURL(file);
  preview.hidden = false;
  version += 1;
  send(file, file.type || 'application/octet-stream', version);
  event.target.value = '';
});

async function send(blob, type, mine) {
  document.body.dataset.state = 'busy';
  let answer;
  let ok = false;
  try {
    const response = await fetch('api/read', { method: 'POST', headers: { 'Content-Type': type }, body: blob });
    ok = response.ok;
    answer = await response.json();
  } catch (error) {
    answer = { error: 'no answer from the server (' + error.message + ')' };
  }
  if (mine !== version) { return; }
  if (!ok) {
    numberOut.textContent = '';
    digitsOut.replaceChildren();
    statusOut.textContent = answer.error || 'the server refused the image';
    document.body.dataset.state = 'error';
    return;
  }
  statusOut.textContent = answer.uncertain ? 'a digit marked ? is uncertain' : '';
  numberOut.textContent = answer.number;
  digitsOut.replaceChildren(...answer.digits.map(digitFigure));
  document.body.dataset.state = 'done';
}

function digitFigure(d, k) {
  const figure = document.createElement('figure');
  figure.className = 'digit' + (d.uncertain ? ' uncertain' : '');
  const seen = document.createElement('canvas');
  seen.width = 28;
  seen.height = 28;
  seen.setAttribute('role', 'img');
  seen.setAttribute('aria-label', 'The 28 by 28 image the model saw for digit ' + (k + 1));
  const pixels = seen.getContext('2d').createImageData(28, 28);
  d.pixels.forEach((v, i) => {
    pixels.data.set([v, v, v, 255], i * 4); // white ink on black, as in MNIST
  });
  seen.getContext('2d').putImageData(pixels, 0, 0);
  const caption = document.createElement('figcaption');
  caption.textContent = d.digit + (d.uncertain ? '?' : '') + ' ' + (d.probability * 100).toFixed(1) + '%';
  const bars = document.createElement('ul');
  bars.className = 'bars';
  bars.setAttribute('aria-label', 'Probability of each digit');
  d.probabilities.forEach((p, digit) => {
    const item = document.createElement('li');
    if (digit === d.digit) { item.className = 'best'; }
    const label = document.createElement('span');
    label.textContent = digit;
    const track = document.createElement('span');
    const bar = document.createElement('span');
    bar.className = 'bar';
    bar.style.display = 'block';
    bar.style.width = (p * 100).toFixed(1) + '%';
    track.appendChild(bar);
    const value = document.createElement('span');
    value.textContent = (p * 100).toFixed(1) + '%';
    item.append(label, track, value);
    bars.appendChild(item);
  });
  figure.append(seen, caption, bars);
  return figure;
}

clearPad();
showNothing();
