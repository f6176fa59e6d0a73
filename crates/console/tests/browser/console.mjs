// The console in a real browser (Debian's Chromium through playwright-core),
// against a running `mimamori demo`. Started by
// crates/mimamori/tests/console_browser.rs, which passes:
//   MIMAMORI_URL        the demo's base URL
//   MIMAMORI_USERS      JSON: [{org, username, password, role}]
//   SCREENSHOTS         directory for the screenshots (test artifacts)
//   CHROMIUM            the browser (default /usr/bin/chromium)
// Exits non-zero on the first failed check, saying which.

import { chromium } from "playwright-core";
import { createRequire } from "node:module";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const base = process.env.MIMAMORI_URL;
const users = JSON.parse(process.env.MIMAMORI_USERS || "[]");
const shots = process.env.SCREENSHOTS || "screenshots";
const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");
mkdirSync(shots, { recursive: true });

function check(cond, what) {
  if (!cond) throw new Error("FAILED: " + what);
  console.log("ok   " + what);
}

function user(role) {
  const u = users.find((x) => x.role === role);
  if (!u) throw new Error("the demo printed no " + role + " user");
  return u;
}

/// axe-core over the page: no serious or critical violation.
async function accessible(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ["violations"] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(" ")).slice(0, 5) }));
  });
  const bad = result.filter((v) => v.impact === "serious" || v.impact === "critical");
  for (const v of result) console.log(`     axe ${name}: ${v.impact} ${v.id} ${JSON.stringify(v.nodes)}`);
  check(bad.length === 0, `${name}: no serious or critical accessibility violations`);
}

async function shot(page, name) {
  await page.screenshot({ path: join(shots, name + ".png"), fullPage: true });
}

async function signIn(page, u) {
  await page.goto(base + "/console/");
  check(page.url().includes("/console/login"), `${u.role}: sent to the sign-in page`);
  await page.getByLabel(/Organisation|組織/).fill(u.org);
  await page.getByLabel(/User name|ユーザー名/).fill(u.username);
  await page.getByLabel(/^Password$|^パスワード$/).fill(u.password);
  await page.getByRole("button", { name: /Sign in|サインイン/ }).first().click();
  await page.waitForURL(/\/console\/$/);
  check(true, `${u.role}: signed in with a password`);
}

/// Reloads the alert list until it has rows (the demo's detections
/// arrive within seconds of start), up to `seconds`.
async function alertRows(page, seconds) {
  const until = Date.now() + seconds * 1000;
  for (;;) {
    await page.goto(base + "/console/alerts");
    const n = await page.locator("[data-testid=alert-table] tbody tr").count();
    if (n > 0 || Date.now() > until) return n;
    await page.waitForTimeout(2000);
  }
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"],
});
try {
  const ctx = await browser.newContext({ locale: "en-GB", timezoneId: "Asia/Tokyo", viewport: { width: 1280, height: 900 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  // Script errors, not the 403/404 statuses this test asks for on purpose
  // (Chromium logs those as "Failed to load resource").
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) errors.push(m.text());
  });

  // Sign-in page.
  await page.goto(base + "/console/login");
  await accessible(page, "sign-in page");
  await shot(page, "01-sign-in");

  // A central SOC analyst.
  const soc = user("soc-analyst");
  await signIn(page, soc);
  check(await page.getByTestId("scope").innerText().then((t) => t.includes("soc-analyst") && t.includes("sub-tree")), "scope is shown");
  // Times are in the browser's zone, which the header names.
  check((await page.locator("[data-tz]").innerText()) === "Asia/Tokyo", "times are shown in the browser's time zone");

  const rows = await alertRows(page, 90);
  check(rows > 0, `the demo's alerts are listed (${rows})`);
  const orgsListed = await page.locator("[data-testid=alert-table] tbody tr td:nth-child(2)").allInnerTexts();
  check(new Set(orgsListed).size >= 2, `alerts of several orgs (${[...new Set(orgsListed)].join(", ")})`);
  await accessible(page, "alert list");
  await shot(page, "03-alerts");

  // The overview: its cards link to the lists behind them.
  await page.goto(base + "/console/");
  const open = Number(await page.getByTestId("open-alerts").locator(".n").innerText());
  check(open > 0, `overview counts open alerts (${open})`);
  await page.waitForSelector("#chart-alerts canvas", { timeout: 5000 });
  check(true, "overview draws the alerts chart");
  await accessible(page, "overview");
  await shot(page, "02-overview");
  await Promise.all([page.waitForNavigation(), page.getByTestId("open-alerts").click()]);
  check(page.url().includes("/console/alerts?open=true"), "the open-alerts card opens the list behind it");

  // Keyboard: the skip link is the first stop, then the navigation.
  await page.goto(base + "/console/");
  await page.keyboard.press("Tab");
  check(await page.evaluate(() => document.activeElement.classList.contains("skip")), "Tab reaches the skip link first");
  let reached = false;
  for (let i = 0; i < 6 && !reached; i++) {
    await page.keyboard.press("Tab");
    reached = await page.evaluate(() => document.activeElement.getAttribute("href") === "/console/alerts");
  }
  check(reached, "Tab reaches the Alerts link");
  await page.keyboard.press("Enter");
  await page.waitForURL(/\/console\/alerts$/);
  check(true, "Enter on it opens the alert list");

  // An alert outside mof, for the org analyst to try later; then
  // acknowledge the first new alert, by keyboard.
  await page.goto(base + "/console/alerts?status=new");
  const links = page.locator("[data-testid=alert-table] tbody tr");
  const count = await links.count();
  let foreign = null;
  for (let i = 0; i < count; i++) {
    const org = await links.nth(i).locator("td:nth-child(2)").innerText();
    if (org.trim() !== "mof") {
      foreign = await links.nth(i).locator("td:nth-child(4) a").getAttribute("href");
      break;
    }
  }
  check(foreign !== null, "an alert of an org other than mof exists");
  await links.first().locator("td:nth-child(4) a").click();
  await page.waitForURL(/\/console\/alerts\/[^/]+$/);
  check((await page.getByTestId("alert-status").innerText()) === "New", "the alert is new");
  await accessible(page, "alert detail");
  await page.getByRole("button", { name: "Acknowledge" }).focus();
  await Promise.all([page.waitForNavigation(), page.keyboard.press("Enter")]);
  check((await page.getByTestId("alert-status").innerText()) === "Acknowledged", "acknowledged from the detail page");
  check((await page.getByTestId("history").innerText()).includes("New → Acknowledged"), "the change is in the history");
  await page.getByLabel("Add a comment").fill("checked the proxy log");
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Post comment" }).click()]);
  check(await page.getByText("checked the proxy log").isVisible(), "a comment is posted");
  await shot(page, "04-alert-detail");

  // Campaigns: the C2 domain seen at three orgs.
  const until = Date.now() + 60000;
  let campaigns = 0;
  while (campaigns === 0 && Date.now() < until) {
    await page.goto(base + "/console/campaigns");
    campaigns = await page.locator("[data-testid=campaign-table] tbody tr").count();
    if (campaigns === 0) await page.waitForTimeout(2000);
  }
  check(campaigns > 0, `campaigns are listed (${campaigns})`);
  await accessible(page, "campaigns");
  await shot(page, "05-campaigns");
  await page.locator("[data-testid=campaign-table] tbody tr td a").first().click();
  await page.waitForURL(/\/console\/campaigns\/.+/);
  check((await page.locator("[data-testid=alert-table] tbody tr").count()) > 0, "a campaign lists its alerts");
  await shot(page, "06-campaign");

  // Hunt: SQL over the archive, results, and a CSV download.
  await page.goto(base + "/console/hunt");
  await page.getByRole("button", { name: "Run" }).click();
  await page.waitForSelector("[data-testid=hunt-table], [data-testid=hunt-error]");
  const huntRows = await page.locator("[data-testid=hunt-table] tbody tr").count();
  check(huntRows > 0, `a hunt over the archive returns rows (${huntRows})`);
  check((await page.locator("[data-testid=hunt-table]").innerText()).includes("update-check.cdn-telemetry.example"), "the hunt finds the demo's C2 domain");
  await accessible(page, "hunt");
  await shot(page, "09-hunt");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: "Download CSV" }).click(),
  ]);
  check(download.suggestedFilename() === "hunt.csv", "the hunt downloads as CSV");

  // Intel: import a STIX 2.1 bundle, then find its indicator.
  const now = new Date().toISOString();
  const bundle = {
    type: "bundle", id: "bundle--6f1a3c2e-0b7d-4d6e-9a51-1c2d3e4f5a6b",
    objects: [{
      type: "indicator", spec_version: "2.1", id: "indicator--0c7b5b88-8ff7-4a4d-aa9d-feb398cd0061",
      created: now, modified: now, valid_from: now, name: "browser test domain",
      pattern: "[domain-name:value = 'browser-test.example']", pattern_type: "stix",
      indicator_types: ["malicious-activity"],
    }],
  };
  await page.goto(base + "/console/intel/import");
  await page.getByLabel("Format").selectOption("stix");
  await page.getByLabel(/^Document/).fill(JSON.stringify(bundle));
  await accessible(page, "intel import");
  await page.getByRole("button", { name: "Import" }).click();
  const result = await page.getByTestId("import-result").innerText();
  check(result.includes("1 new"), `a STIX bundle is imported (${result})`);
  await page.goto(base + "/console/intel?contains=browser-test");
  check((await page.locator("[data-testid=indicator-table]").innerText()).includes("browser-test.example"), "the imported indicator is listed");
  await accessible(page, "intel");
  await shot(page, "10-intel");
  // The demo's C2 domain (TLP:AMBER, the central SOC's): seen at three orgs.
  await page.goto(base + "/console/intel?contains=update-check");
  await page.locator("[data-testid=indicator-table] tbody tr td a").first().click();
  await page.waitForURL(/\/console\/intel\/.+/);
  const c2Url = new URL(page.url()).pathname;
  const seenAt = await page.getByTestId("sightings").innerText();
  check(["mof", "mhlw", "jaxa"].every((o) => seenAt.includes(o)), `the C2 indicator's sightings name its orgs (${seenAt})`);
  await accessible(page, "indicator");
  await shot(page, "11-indicator");

  // The org tree.
  await page.goto(base + "/console/orgs");
  check((await page.locator("[data-testid=org-table] tbody tr").count()) === 9, "the central analyst sees the 9 orgs of the tree");
  await accessible(page, "orgs");
  await shot(page, "13-orgs");

  // Japanese.
  await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "日本語" }).click()]);
  check((await page.locator("html").getAttribute("lang")) === "ja", "the page is in Japanese after the switch");
  check(await page.getByRole("link", { name: "アラート" }).first().isVisible(), "the navigation is translated");
  check(await page.getByRole("button", { name: "サインアウト" }).isVisible(), "sign-out is translated");
  await page.goto(base + "/console/");
  await accessible(page, "overview (ja)");
  await shot(page, "07-overview-ja");
  await Promise.all([page.waitForNavigation(), page.getByRole("link", { name: "English" }).click()]);
  await page.getByRole("button", { name: "Sign out" }).click();
  await page.waitForURL(/\/console\/login/);
  check(true, "signed out");

  // An org analyst of mof: only mof, and the other org's alert is not
  // reachable by typed URL.
  const mof = user("org-analyst");
  await signIn(page, mof);
  await page.goto(base + "/console/alerts");
  const mine = await page.locator("[data-testid=alert-table] tbody tr td:nth-child(2)").allInnerTexts();
  check(mine.every((o) => o.trim() === "mof"), `the mof analyst sees only mof's alerts (${mine.length})`);
  const resp = await page.goto(base + foreign);
  check(resp.status() === 404, `another org's alert by typed URL is 404 (${resp.status()})`);
  await shot(page, "08-org-analyst-404");
  // Its hunts see only its own org's events.
  await page.goto(base + "/console/hunt");
  await page.getByLabel(/^SQL/).fill("SELECT DISTINCT org_id FROM events");
  await page.getByRole("button", { name: "Run" }).click();
  await page.waitForSelector("[data-testid=hunt-table]");
  check((await page.locator("[data-testid=hunt-table] tbody tr").count()) === 1, "the mof analyst's hunt sees one org's events");
  // The central SOC's AMBER C2 indicator, with the other orgs' sightings,
  // is not shared with mof: not listed, and 404 by typed URL.
  await page.goto(base + "/console/intel?contains=update-check");
  check((await page.locator("[data-testid=indicator-table] tbody tr").count()) === 0, "the mof analyst does not see the SOC's AMBER indicator");
  const c2 = await page.goto(base + c2Url);
  check(c2.status() === 404, `the SOC's indicator and its sightings by typed URL are 404 (${c2.status()})`);
  check(!(await page.locator("main").innerText()).includes("jaxa"), "no other org's sighting on the page");
  await shot(page, "12-org-analyst-indicator-404");
  await page.goto(base + "/console/audit");
  check((await page.title()).length > 0 && (await page.locator("main").innerText()).length > 0, "the refused page renders");
  await page.goto(base + "/console/");
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Sign out" }).click()]);

  // An org admin of jaxa: users, tokens and DNS lists of its own org.
  const admin = user("org-admin");
  await signIn(page, admin);
  await page.goto(base + "/console/users");
  await accessible(page, "users");
  await page.getByLabel("User name").fill("second-analyst");
  await page.getByLabel(/^Password/).fill("a long enough password");
  await page.getByLabel("Role").selectOption("org-analyst");
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Add a user" }).click()]);
  check((await page.getByTestId("user-table").innerText()).includes("second-analyst"), "the org admin adds a user");
  await page.goto(base + "/console/tokens");
  await page.getByLabel("What it is for").fill("fluent-bit on dns01");
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Issue a token" }).click()]);
  const secret = await page.getByTestId("issued-token").locator("code").innerText();
  check(secret.startsWith("mmr_"), "a token is issued and its secret shown once");
  await accessible(page, "tokens");
  await shot(page, "14-tokens");
  await page.goto(base + "/console/tokens");
  check(!(await page.locator("main").innerText()).includes(secret), "the secret is not shown again");
  await page.goto(base + "/console/dns");
  await page.getByLabel("Domain").fill("blocked-by-jaxa.example");
  await page.getByLabel("Why").fill("phishing seen at jaxa");
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Add an entry" }).click()]);
  check((await page.getByTestId("dns-table").innerText()).includes("blocked-by-jaxa.example"), "the org admin adds a DNS block");
  await accessible(page, "protective dns");
  await shot(page, "15-dns");
  await Promise.all([page.waitForNavigation(), page.getByRole("button", { name: "Remove blocked-by-jaxa.example" }).click()]);
  check(!(await page.locator("main").innerText()).includes("blocked-by-jaxa.example"), "and removes it");
  await page.goto(base + "/console/audit");
  check((await page.getByTestId("audit-table").innerText()).includes("dns_policy"), "the audit log shows the changes");
  check(errors.length === 0, "no script errors: " + errors.join("; "));
  await ctx.close();
} finally {
  await browser.close();
}
console.log("all browser checks passed");
