// Drives the daemon's pages in Debian's Chromium as a person would: choose a service on the
// trace page, ask for its errors, open the first trace found, click a span that did not fail,
// then the span where the error began; then click the service on the service graph page and
// land on its traces. Prints what was seen (JSON on stdout) and keeps a screenshot.
// Usage: node trace_page.js ADMIN_URL SERVICE SCREENSHOT.png
"use strict";
const { chromium } = require("playwright-core");

async function main() {
  const [url, service, shot] = process.argv.slice(2);
  if (!url || !service || !shot) throw new Error("usage: node trace_page.js ADMIN_URL SERVICE SCREENSHOT.png");
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run"],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.setDefaultTimeout(20000);
    await page.goto(url + "/traces");
    await page.waitForSelector(`#service option[value="${service}"]`, { state: "attached" });
    await page.selectOption("#service", service);
    await page.check('input[name="errors"]');
    await page.click('#search button[type="submit"]');
    const item = page.locator("#items .item").first();
    await item.waitFor();
    const listed = await item.innerText();
    await item.click();
    await page.locator("#view .row").first().waitFor();
    const rows = await page.locator("#view .row").count();
    await page.locator("#view .row:not(.err)").first().click();
    const healthy = await page.locator("#detail").innerText();
    const origin = page.locator("#view .row.origin");
    await origin.click();
    const failing = await page.locator("#detail").innerText();
    const originSpan = await origin.getAttribute("data-span");
    const critical = await page.locator("#view .row.crit").count();
    const rootCritical = await page.locator("#view .row").first().evaluate((r) => r.classList.contains("crit"));
    await page.screenshot({ path: shot, fullPage: true });
    // The service graph page: the service's node links to its traces.
    await page.goto(url + "/");
    const node = page.locator(`a.to-traces g.node[data-service="${service}"]`);
    await node.waitFor();
    await node.click();
    await page.waitForURL((u) => u.pathname === "/traces");
    await page.locator("#items .item").first().waitFor();
    const landed = { path: new URL(page.url()).pathname, service: await page.inputValue("#service") };
    console.log(JSON.stringify({ listed, rows, healthy, failing, originSpan, critical, rootCritical, landed }));
  } finally {
    await browser.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
