// The chat example in a real browser, driven over the DevTools protocol by
// playwright-core (scripts/chat_browser.sh installs it, starts the server and Chromium,
// and runs this):
//
//   node scripts/chat_browser.cjs http://SERVER http://127.0.0.1:DEVTOOLS_PORT
//
// Two pages join room "lobby" as alice and bob; both see both names; a message alice
// types (with markup in it) appears in bob's list as text; alice's page closes and bob's
// member list loses her. Every wait gives up after WAIT_MS with what the page showed.
"use strict";

const { chromium } = require("playwright-core");

const WAIT_MS = 20_000;

/// The names in a page's member list, sorted (the server sends them in join order).
async function members(page) {
  const names = await page.locator("#members li").allTextContents();
  return names.sort();
}

/// Waits until the page's member list is exactly `expected` (sorted).
async function waitMembers(page, who, expected) {
  try {
    await page.waitForFunction(
      (want) =>
        JSON.stringify([...document.querySelectorAll("#members li")].map((li) => li.textContent).sort()) ===
        JSON.stringify(want),
      expected,
      { timeout: WAIT_MS },
    );
  } catch (e) {
    throw new Error(
      `${who}'s member list: wanted ${JSON.stringify(expected)}, shows ${JSON.stringify(await members(page))} ` +
        `(status: ${await page.locator("#status").textContent()})`,
    );
  }
  console.log(`${who} sees members ${JSON.stringify(expected)}`);
}

/// Opens the chat page as `name` in room lobby; fails on any script error in it.
async function join(context, site, name, errors) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.on("pageerror", (e) => errors.push(`${name}: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`${name} console: ${m.text()}`);
  });
  await page.goto(`${site}/?room=lobby&name=${name}`, { timeout: WAIT_MS });
  await page.waitForSelector("body[data-status=connected]", { timeout: WAIT_MS });
  return page;
}

async function main() {
  const [site, devtools] = process.argv.slice(2);
  if (!site || !devtools) throw new Error("usage: chat_browser.cjs SITE_URL DEVTOOLS_URL");
  const browser = await chromium.connectOverCDP(devtools, { timeout: WAIT_MS });
  const context = browser.contexts()[0] ?? (await browser.newContext());
  const errors = [];

  const alice = await join(context, site, "alice", errors);
  await waitMembers(alice, "alice", ["alice"]);
  const bob = await join(context, site, "bob", errors);
  await waitMembers(bob, "bob", ["alice", "bob"]);
  await waitMembers(alice, "alice", ["alice", "bob"]);

  // Markup in a message must arrive as text: if the page parsed it, bob's list would
  // gain a <b> element and the item's text would lose the tags.
  const said = 'hello <b>bob</b> & "friends"';
  await alice.fill("#text", said);
  await alice.press("#text", "Enter");
  const line = bob.locator("#messages li", { hasText: "hello" });
  try {
    await line.first().waitFor({ timeout: WAIT_MS });
  } catch (e) {
    throw new Error(`bob never saw the message; his list: ${JSON.stringify(await bob.locator("#messages li").allTextContents())}`);
  }
  const name = await line.first().locator(".name").textContent();
  const text = await line.first().locator(".text").textContent();
  if (name !== "alice" || text !== said) {
    throw new Error(`bob saw ${JSON.stringify([name, text])}, wanted ${JSON.stringify(["alice", said])}`);
  }
  if ((await bob.locator("#messages b").count()) !== 0) {
    throw new Error("the message's markup became elements in bob's page");
  }
  console.log(`bob saw alice's message as text: ${JSON.stringify(text)}`);

  await alice.close();
  await waitMembers(bob, "bob", ["bob"]);

  if (errors.length) throw new Error(`errors in the pages:\n${errors.join("\n")}`);
  await bob.close();
  // Disconnects; the shell script ends the browser itself.
  await browser.close();
}

main().then(
  () => console.log("chat in the browser: OK"),
  (e) => {
    console.error(`chat in the browser: FAILED: ${e.message}`);
    process.exit(1);
  },
);
