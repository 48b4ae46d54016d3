import fs from "node:fs";
import { chromium, type Browser } from "playwright-core";

// Headless Chromium from Debian's `chromium` package, driven by playwright-core (which
// downloads no browser). A missing browser fails the test: a skipped browser test would
// let a broken dashboard pass.

export const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

export async function launchChromium(): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: the dashboard's browser test needs Debian's chromium package (apt-get install chromium, as .ci/run does), or CHROMIUM_PATH naming another Chromium`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}
