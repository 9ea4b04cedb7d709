// The web console in a real browser (Debian's Chromium, driven by Playwright), against a
// running `govcloud dev`: each kind of user does their month's work through the pages only.
//
//   GOVCLOUD_URL      the console, e.g. http://127.0.0.1:8080
//   GOVCLOUD_TOKENS   the dev state directory's tokens.json (the API is used only to look up
//                     what another agency owns and to check what the pages did)
//   CHROMIUM          the browser (default /usr/bin/chromium)
//   SCREENSHOTS       where screenshots of the main pages are saved (test artefacts)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const AXE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
const BASE = process.env.GOVCLOUD_URL ?? 'http://127.0.0.1:8080';
const TOKENS = JSON.parse(readFileSync(process.env.GOVCLOUD_TOKENS ?? '.govcloud-dev/tokens.json', 'utf8'));
const SHOTS = process.env.SCREENSHOTS ?? 'screenshots';
mkdirSync(SHOTS, { recursive: true });

const AGENCY = 'demo-stttt';
// Tells this run's requests from any earlier run's.
const RUN = Date.now().toString(36);
const OTHER_AGENCY = 'demo-sotc';

let browser;
before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});
after(async () => { await browser?.close(); });

async function api(path, role, init = {}) {
  const r = await fetch(`${BASE}${path}`, {
    ...init,
    headers: { authorization: `Bearer ${TOKENS[role]}`, 'content-type': 'application/json', ...(init.headers ?? {}) },
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** A new browser session signed in as the seeded person `name`, on the sign-in page's form. */
async function signIn(name) {
  const context = await browser.newContext({ acceptDownloads: true, locale: 'vi-VN' });
  const page = await context.newPage();
  await page.goto(`${BASE}/`);
  assert.match(page.url(), /\/sign-in\?return_to=/);
  await page.getByLabel(name).check();
  await page.getByRole('button', { name: 'Đăng nhập' }).click();
  await page.waitForLoadState();
  assert.doesNotMatch(page.url(), /sign-in/, `signed in as ${name}`);
  return { context, page };
}

async function shot(page, name) {
  await page.screenshot({ path: `${SHOTS}/${name}.png`, fullPage: true });
}

/** No axe-core violations of WCAG 2.1 A and AA (labels, contrast, names, landmarks…). */
async function accessible(page, what) {
  await page.addScriptTag({ content: AXE });
  const result = await page.evaluate(async () =>
    // eslint-disable-next-line no-undef
    await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }));
  const found = result.violations.map((v) => `${v.id}: ${v.help} (${v.nodes.length}× e.g. ${v.nodes[0]?.target})`);
  assert.deepEqual(found, [], `${what} has accessibility violations`);
}

/** A link of the main navigation. */
function nav(page, name) {
  return page.getByRole('navigation').getByRole('link', { name, exact: true });
}

function notice(page) {
  return page.locator('main .notice').first();
}

test('a finance officer opens last month\'s invoice of a demo agency, approves it and downloads its PDF', async () => {
  const { context, page } = await signIn('demo-province-finance');
  // Finance lands on last month's invoices.
  await page.waitForURL(/\/invoices/);
  await accessible(page, 'the invoices page');
  await shot(page, 'finance-invoices');
  const row = page.locator('#t-invoices tbody tr', { hasText: 'Sở Thông tin và Truyền thông' }).first();
  await row.getByRole('link').first().click();
  await page.waitForURL(/\/invoices\/[0-9a-f-]{36}$/);
  const id = page.url().split('/').pop();
  await assert.doesNotReject(page.getByText('Đã phát hành, chờ duyệt').first().waitFor());
  await accessible(page, 'the invoice page');
  await shot(page, 'finance-invoice');
  const total = await page.locator('[data-total]').getAttribute('data-total');

  await page.getByRole('button', { name: 'Duyệt hóa đơn' }).click();
  await page.waitForLoadState();
  assert.match(await notice(page).innerText(), /Đã duyệt hóa đơn/);
  await page.getByText('Đã duyệt bởi demo-province-finance').waitFor();
  const after = await api(`/v1/invoices/${id}`, 'platform-admin');
  assert.equal(after.body.state, 'approved');
  assert.equal(after.body.approvedBy, 'demo-province-finance');

  const [download] = await Promise.all([
    page.waitForEvent('download'),
    page.getByRole('link', { name: 'Tải PDF' }).click(),
  ]);
  const pdf = `${SHOTS}/${download.suggestedFilename()}`;
  await download.saveAs(pdf);
  assert.equal(readFileSync(pdf).subarray(0, 5).toString(), '%PDF-');
  const text = execFileSync('pdftotext', ['-layout', pdf, '-']).toString();
  const vi = Number(total).toLocaleString('de-DE'); // 1.234.567: Vietnamese grouping
  assert.ok(text.includes(vi), `the PDF shows the total ${vi}`);

  // Every table downloads as CSV that Excel reads: UTF-8 with a byte-order mark, plain numbers.
  const [csv] = await Promise.all([
    page.waitForEvent('download'),
    page.locator('#t-lines').getByRole('link', { name: 'Tải CSV' }).click(),
  ]);
  const bytes = readFileSync(await csv.path());
  assert.deepEqual([...bytes.subarray(0, 3)], [0xef, 0xbb, 0xbf]);
  const lines = bytes.toString('utf8').slice(1).trim().split('\r\n');
  assert.match(lines[0], /^#,Namespace,Chỉ số/);
  const amounts = lines.slice(1).map((l) => l.split(','));
  const sum = amounts.reduce((s, cells) => s + Number(cells[7]), 0);
  assert.equal(sum, Number(after.body.subtotal), 'the CSV lines add up to the subtotal');

  // The summary and the budgets with their alert.
  await nav(page, 'Tổng hợp tháng').click();
  await page.locator('#t-summary').waitFor();
  await accessible(page, 'the summary page');
  await shot(page, 'finance-summary');
  await nav(page, 'Ngân sách').click();
  await page.locator('#t-alerts tbody tr').first().waitFor();
  await accessible(page, 'the budgets page');
  await shot(page, 'finance-budgets');
  await context.close();
});

test('a finance officer disputes an invoice with a reason, and a dispute without one is refused', async () => {
  const list = await api(`/v1/invoices?tenant=${OTHER_AGENCY}&state=issued`, 'platform-admin');
  const issued = list.body.items.find((i) => i.kind === 'invoice');
  assert.ok(issued, 'an issued invoice of the other demo agency');
  const { context, page } = await signIn('demo-province-finance');
  await page.goto(`${BASE}/invoices/${issued.id}`);
  // Required reason: the browser will not send the form empty.
  await page.getByRole('button', { name: 'Khiếu nại' }).click();
  assert.equal((await api(`/v1/invoices/${issued.id}`, 'platform-admin')).body.state, 'issued');
  await page.getByLabel('Lý do').fill('Số giờ CPU tháng này cao bất thường');
  await page.getByRole('button', { name: 'Khiếu nại' }).click();
  await page.waitForLoadState();
  assert.match(await notice(page).innerText(), /khiếu nại/i);
  const after = await api(`/v1/invoices/${issued.id}`, 'platform-admin');
  assert.equal(after.body.state, 'disputed');
  assert.equal(after.body.disputeReason, 'Số giờ CPU tháng này cao bất thường');
  await context.close();
});

test('an agency asks for capacity, an IT officer approves it and sees the quota change; one that does not fit is refused with the reason', async () => {
  const agency = await signIn('demo-stttt-admin');
  await agency.page.waitForURL(new RegExp(`/tenants/${AGENCY}$`));
  await accessible(agency.page, 'the agency page');
  await shot(agency.page, 'agency-home');
  const before = await api(`/v1/tenants/${AGENCY}`, 'platform-admin');
  const prod = before.body.namespaces.find((n) => n.name === 'prod');
  const wanted = String(Number(prod.quota.cpu.replace(/m$/, '')) / (prod.quota.cpu.endsWith('m') ? 1000 : 1) + 1);
  await agency.page.getByLabel('Namespace', { exact: true }).first().selectOption('prod');
  await agency.page.locator('#rq-cpu').fill(wanted);
  await agency.page.locator('#rq-reason').fill(`Mùa tuyển sinh: thêm một lõi (${RUN})`);
  await agency.page.getByRole('button', { name: 'Gửi yêu cầu' }).click();
  await agency.page.waitForLoadState();
  assert.match(await notice(agency.page).innerText(), /Đã gửi yêu cầu/);
  // …and one far past the province's allotment.
  await agency.page.locator('#rq-cpu').fill('100000');
  await agency.page.locator('#rq-reason').fill(`Quá lớn (${RUN})`);
  await agency.page.getByRole('button', { name: 'Gửi yêu cầu' }).click();
  await agency.page.waitForLoadState();
  await agency.context.close();

  const it = await signIn('demo-province-it');
  await nav(it.page, 'Yêu cầu tài nguyên').click();
  await accessible(it.page, 'the request queue');
  await shot(it.page, 'it-requests');
  const small = it.page.locator('#t-requests tbody tr', { hasText: `Mùa tuyển sinh: thêm một lõi (${RUN})` });
  await small.getByRole('button', { name: 'Phê duyệt' }).click();
  await it.page.waitForLoadState();
  assert.match(await notice(it.page).innerText(), /Đã phê duyệt/);
  const big = it.page.locator('#t-requests tbody tr', { hasText: `Quá lớn (${RUN})` });
  await big.getByRole('button', { name: 'Phê duyệt' }).click();
  await it.page.waitForLoadState();
  const refusal = await notice(it.page).innerText();
  assert.match(refusal, /Không đủ (hạn mức|năng lực)/, refusal);
  assert.match(refusal, /vượt/);
  // The refused one is still pending, and can be rejected with a reason.
  await big.getByLabel('Lý do').fill('Vượt hạn mức của tỉnh');
  await big.getByRole('button', { name: 'Từ chối' }).click();
  await it.page.waitForLoadState();
  assert.match(await notice(it.page).innerText(), /Đã từ chối/);

  // The quota changed: on the agency's page, and in the API.
  await it.page.goto(`${BASE}/tenants/${AGENCY}`);
  const cell = it.page.locator('#t-namespaces tbody tr', { hasText: `${AGENCY}-prod` }).locator('td').nth(2);
  assert.equal((await cell.innerText()).replace(',', '.'), `${wanted} lõi`);
  const after = await api(`/v1/tenants/${AGENCY}`, 'platform-admin');
  assert.equal(after.body.namespaces.find((n) => n.name === 'prod').quota.cpu, wanted);
  await shot(it.page, 'it-agency');

  // IT's other pages: the agencies, the utilisation report with its suggestions, the links.
  await nav(it.page, 'Cơ quan').click();
  await it.page.locator('#t-agencies').waitFor();
  await accessible(it.page, 'the organization page');
  await shot(it.page, 'it-organization');
  await nav(it.page, 'Mức sử dụng').click();
  await it.page.locator('#t-utilisation tbody tr').first().waitFor();
  await accessible(it.page, 'the utilisation report');
  await shot(it.page, 'it-utilisation');
  await nav(it.page, 'Liên kết dữ liệu').click();
  await it.page.locator('#t-links tbody tr').first().waitFor();
  await shot(it.page, 'it-links');
  await it.context.close();
});

test('an IT officer suspends an agency with a reason and resumes it', async () => {
  const it = await signIn('demo-province-it');
  await it.page.goto(`${BASE}/tenants/${OTHER_AGENCY}`);
  await it.page.locator('#suspend-reason').fill('Kiểm tra an ninh');
  await it.page.getByRole('button', { name: 'Tạm dừng cơ quan' }).click();
  await it.page.waitForLoadState();
  assert.match(await notice(it.page).innerText(), /Đã tạm dừng/);
  assert.equal((await api(`/v1/tenants/${OTHER_AGENCY}`, 'platform-admin')).body.suspended, true);
  await it.page.getByText('Cơ quan đang bị tạm dừng').waitFor();
  await it.page.locator('#resume-reason').fill('Đã kiểm tra xong');
  await it.page.getByRole('button', { name: 'Cho hoạt động lại' }).click();
  await it.page.waitForLoadState();
  assert.equal((await api(`/v1/tenants/${OTHER_AGENCY}`, 'platform-admin')).body.suspended, false);
  await it.context.close();
});

test('an agency admin cannot open another agency\'s invoice, page or statement', async () => {
  const theirs = await api(`/v1/invoices?tenant=${OTHER_AGENCY}`, 'platform-admin');
  const id = theirs.body.items[0].id;
  const { context, page } = await signIn('demo-stttt-admin');
  for (const path of [`/invoices/${id}`, `/invoices/${id}/statement.pdf`, `/invoices/${id}/statement.csv`, `/tenants/${OTHER_AGENCY}`, `/tenants/${OTHER_AGENCY}/namespaces/prod`]) {
    const r = await page.goto(`${BASE}${path}`).catch(async () => null);
    const status = r ? r.status() : (await context.request.get(`${BASE}${path}`)).status();
    assert.equal(status, 404, `${path} answers 404 to another agency`);
  }
  // Their own invoices list shows only their own agency.
  await page.goto(`${BASE}/invoices`);
  const agencies = await page.locator('#t-invoices tbody tr td:nth-child(2)').allInnerTexts();
  assert.ok(agencies.length > 0);
  assert.ok(agencies.every((a) => a.startsWith('Sở Thông tin và Truyền thông')), agencies.join());
  await context.close();
});

test('a form posted without its CSRF token, or with another session\'s, is refused and changes nothing', async () => {
  const agency = await signIn('demo-stttt-admin');
  // Ask for something the IT officer could approve.
  await agency.page.locator('#rq-cpu').fill('1');
  await agency.page.locator('#rq-reason').fill(`CSRF thử (${RUN})`);
  await agency.page.getByRole('button', { name: 'Gửi yêu cầu' }).click();
  await agency.page.waitForLoadState();
  const pending = (await api('/v1/capacity-requests?state=pending', 'platform-admin')).body.items.find((r) => r.reason === `CSRF thử (${RUN})`);
  assert.ok(pending);

  const it = await signIn('demo-province-it');
  const agencyToken = await agency.page.locator('input[name=csrf]').first().inputValue();
  for (const form of [{}, { csrf: '' }, { csrf: agencyToken }, { csrf: 'x'.repeat(43) }]) {
    const r = await it.context.request.post(`${BASE}/requests/${pending.id}/approve`, { form, maxRedirects: 0 });
    assert.equal(r.status(), 403, `approve with ${JSON.stringify(form)}`);
  }
  assert.equal((await api(`/v1/capacity-requests/${pending.id}`, 'platform-admin')).body.state, 'pending');
  // A page in another site's frame posting the form: the session cookie is SameSite=Lax, so
  // the browser does not even send it, and the form gets the sign-in page.
  const cookies = await it.context.cookies();
  const session = cookies.find((c) => c.name === 'govcloud_session');
  assert.equal(session.httpOnly, true);
  assert.equal(session.sameSite, 'Lax');
  await agency.context.close();
  await it.context.close();
});

test('the keyboard alone signs in, switches language and signs out; the old session is over', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${BASE}/sign-in`);
  await accessible(page, 'the sign-in page');
  await shot(page, 'sign-in');
  // Tab to the first person, pick the platform admin with the arrow keys, submit with Enter.
  await page.keyboard.press('Tab');
  const labels = await page.locator('.choice label').allInnerTexts();
  const target = labels.findIndex((l) => l.includes('demo-platform-admin'));
  for (let i = 0; i < target; i++) await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/organizations/);
  assert.match(await page.locator('.who').innerText(), /demo-platform-admin/);
  // Language: English, by keyboard.
  await page.getByRole('button', { name: 'English' }).focus();
  await page.keyboard.press('Enter');
  await page.locator('html[lang=en]').waitFor({ state: 'attached' });
  await page.getByRole('link', { name: 'Capacity requests' }).waitFor();
  await shot(page, 'platform-admin-en');
  const cookie = (await context.cookies()).find((c) => c.name === 'govcloud_session').value;
  await page.getByRole('button', { name: 'Sign out' }).focus();
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/sign-in/);
  // The cookie of the session that ended opens nothing.
  const r = await fetch(`${BASE}/organizations`, { headers: { cookie: `govcloud_session=${cookie}` }, redirect: 'manual' });
  assert.equal(r.status, 303);
  assert.match(r.headers.get('location'), /^\/sign-in/);
  await context.close();
});

test('agency pages: namespace drill-down with usage charts, links, invoices', async () => {
  const { context, page } = await signIn('demo-stttt-admin');
  await page.locator('#t-namespaces tbody tr').first().getByRole('link').first().click();
  await page.waitForURL(/\/namespaces\//);
  await page.locator('svg[role=img]').first().waitFor();
  await accessible(page, 'the namespace page');
  await shot(page, 'agency-namespace');
  await nav(page, 'Liên kết dữ liệu').click();
  await page.locator('#t-links').waitFor();
  await accessible(page, 'the links page');
  await shot(page, 'agency-links');
  await nav(page, 'Hóa đơn').click();
  await page.locator('#t-invoices').waitFor();
  await shot(page, 'agency-invoices');
  writeFileSync(`${SHOTS}/README.txt`, 'Screenshots of the console taken by tests/console/console.test.mjs.\n');
  await context.close();
});
