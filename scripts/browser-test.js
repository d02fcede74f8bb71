// Drives the drawing page of `mnist serve` in headless Chromium (see browser-test.sh): draws a
// 7 with mouse strokes and expects "7", then 1 and 7 for "17", clears, uploads a picture of a
// number and expects its digits, and saves screenshots of both.
// Arguments: CHROMIUM URL UPLOAD_IMAGE EXPECTED_NUMBER OUT_DIR.
'use strict';
const path = require('path');
const { chromium } = require('playwright-core');

const [executablePath, url, upload, expected, outDir] = process.argv.slice(2);

async function readNumber(page) {
  // The page marks what it shows with data-state: busy from the first change to the canvas (set
  // in the pointer handlers, which have run when a Playwright mouse call returns) until the
  // answer to the latest drawing arrives; answers to older drawings are dropped. So once the
  // strokes are drawn, done or error belongs to the final drawing.
  await page.waitForFunction(() => ['done', 'error'].includes(document.body.dataset.state), null, { timeout: 20000 });
  const state = await page.evaluate(() => document.body.dataset.state);
  const number = (await page.textContent('#number')).trim();
  const status = (await page.textContent('#status')).trim();
  return { state, number, status };
}

function check(what, got, want) {
  if (got.number !== want) {
    throw new Error(`${what}: the page shows ${JSON.stringify(got.number)} (state ${got.state}, status ${JSON.stringify(got.status)}), expected ${JSON.stringify(want)}`);
  }
  console.log(`${what}: the page shows ${got.number}`);
}

(async () => {
  const browser = await chromium.launch({
    executablePath,
    headless: true,
    // Containers often run as root without a user namespace for Chromium's sandbox.
    args: ['--no-sandbox', '--disable-dev-shm-usage'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 900, height: 900 } });
    page.on('console', (m) => console.log(`page console: ${m.text()}`));
    page.on('pageerror', (e) => { throw e; });
    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.state === 'idle');

    // Mouse strokes in canvas pixels (640x240), each digit about 180 pixels tall.
    const box = await page.locator('#pad').boundingBox();
    const at = (x, y) => [box.x + x * box.width / 640, box.y + y * box.height / 240];
    async function draw(strokes) {
      for (const stroke of strokes) {
        await page.mouse.move(...at(...stroke[0]));
        await page.mouse.down();
        for (const point of stroke.slice(1)) {
          await page.mouse.move(...at(...point), { steps: 12 });
        }
        await page.mouse.up();
      }
    }
    const seven = (x) => [[[x, 40], [x + 120, 40], [x + 50, 215]]]; // the bar, then the stem
    const one = (x) => [[[x + 20, 35], [x, 215]]];

    await draw(seven(250));
    const drawn = await readNumber(page);
    check('drawn 7', drawn, '7');
    const bars = await page.locator('#digits .bars li').count();
    const seen = await page.locator('#digits canvas').count();
    if (bars !== 10 || seen !== 1) {
      throw new Error(`expected 10 probability bars and one 28x28 image, found ${bars} and ${seen}`);
    }

    // A whole number: 1, then 7 to its right.
    await page.click('#clear');
    await draw(one(180));
    await draw(seven(300));
    check('drawn 17', await readNumber(page), '17');
    await page.screenshot({ path: path.join(outDir, 'serve-drawn.png') });

    await page.click('#clear');
    if ((await page.textContent('#number')).trim() !== '') {
      throw new Error('Clear left a number on the page');
    }
    await page.setInputFiles('#upload', upload);
    const uploaded = await readNumber(page);
    check(`uploaded ${path.basename(upload)}`, uploaded, expected);
    const figures = await page.locator('#digits figure').count();
    if (figures !== expected.length) {
      throw new Error(`expected ${expected.length} digit panels, found ${figures}`);
    }
    await page.screenshot({ path: path.join(outDir, 'serve-upload.png'), fullPage: true });
    console.log(`screenshots in ${outDir}`);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(`error: browser test: ${e.message}`);
  process.exit(1);
});
