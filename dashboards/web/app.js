// StorePulse dashboard: plain JS, no framework, Apache ECharts for charts.
//
// Everything shown comes from the API with the session cookie, so the
// server decides what this user may see; the filters' choices come from
// GET /v1/me. The page refreshes itself every 5 s. Every chart's numbers
// are also in the DOM: a table under it and `data-values` (JSON) on the
// chart element, so tests can compare them with the API.
"use strict";

const REFRESH_MS = 5000;

const I18N = {
  zh: {
    title: "StorePulse 门店实时看板", login: "登录", logout: "退出", name: "用户名", password: "密码",
    from: "开始日期", to: "结束日期", region: "区域", store: "门店", group: "分组",
    by_store: "按门店", by_region: "按区域", by_channel: "按渠道",
    all: "全部", all_in_scope: "我的全部门店",
    sales_by_hour: "今日与上周同日每小时销售额（元）", top_skus: "畅销商品", members_by_tag: "会员标签分布",
    new_members: "每日新增会员", stock_alerts: "库存告警", transfers: "调拨建议", fraud_queue: "风控审核队列",
    today: "当日", last_week: "上周同日", total: "合计", hour: "小时", key: "分组", sku: "商品", qty: "数量",
    sales: "销售额（元）", tag: "标签", members: "会员数", day: "日期", kind: "类型", on_hand: "库存",
    time: "时间", from_store: "调出门店", to_store: "调入门店", rule: "规则", alert: "告警", stores: "门店",
    amount: "金额（元）", action: "操作", confirm: "确认欺诈", false_alarm: "误报", updated: "更新于",
    wrong_login: "用户名或密码错误", locked: "失败次数过多，请稍后再试", no_data: "暂无数据",
    oversold: "超卖", out_of_stock: "缺货", forbidden: "无权查看", error: "加载失败",
    net_cents: "销售额（元）", refund_cents: "退款额（元）", orders: "订单数", lines: "商品行数", units: "件数",
    no_sales_role: "此账号只能查看库存与可售数据",
  },
  en: {
    title: "StorePulse live dashboard", login: "Log in", logout: "Log out", name: "User name", password: "Password",
    from: "From", to: "To", region: "Region", store: "Store", group: "Group by",
    by_store: "Store", by_region: "Region", by_channel: "Channel",
    all: "All", all_in_scope: "All my stores",
    sales_by_hour: "Sales per hour, day vs same day last week (CNY)", top_skus: "Top SKUs", members_by_tag: "Members by tag",
    new_members: "New members per day", stock_alerts: "Stock alerts", transfers: "Transfer suggestions", fraud_queue: "Fraud review queue",
    today: "Day", last_week: "Same day last week", total: "Total", hour: "Hour", key: "Group", sku: "SKU", qty: "Qty",
    sales: "Sales (CNY)", tag: "Tag", members: "Members", day: "Day", kind: "Kind", on_hand: "On hand",
    time: "Time", from_store: "From store", to_store: "To store", rule: "Rule", alert: "Alert", stores: "Stores",
    amount: "Amount (CNY)", action: "Action", confirm: "Confirm fraud", false_alarm: "False alarm", updated: "Updated",
    wrong_login: "Wrong name or password", locked: "Too many failed logins; try again later", no_data: "No data",
    oversold: "Oversold", out_of_stock: "Out of stock", forbidden: "Not allowed", error: "Failed to load",
    net_cents: "Sales (CNY)", refund_cents: "Refunds (CNY)", orders: "Orders", lines: "Lines", units: "Units",
    no_sales_role: "This account sees stock and availability only",
  },
};

let lang = localStorage.getItem("storepulse.lang") === "en" ? "en" : "zh";
let me = null;
let timer = null;
const last = {}; // the newest answer of each panel, re-rendered on a language switch

const $ = (id) => document.getElementById(id);
const t = (key) => (I18N[lang] && I18N[lang][key]) || I18N.zh[key] || key;
const yuan = (cents) => Math.round(Number(cents || 0)) / 100;

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c ?? "")));
  return node;
}

function table(id, headers, rows, numeric) {
  const tableEl = $(id);
  tableEl.replaceChildren();
  const head = el("tr", {}, ...headers.map((h, i) => el("th", numeric && numeric[i] ? { class: "num" } : {}, t(h))));
  tableEl.append(el("thead", {}, head));
  const body = el("tbody");
  if (rows.length === 0) body.append(el("tr", {}, el("td", { colspan: headers.length }, t("no_data"))));
  for (const row of rows) {
    const tr = el("tr");
    row.forEach((cell, i) => tr.append(cell instanceof Node ? el("td", {}, cell) : el("td", numeric && numeric[i] ? { class: "num" } : {}, cell)));
    body.append(tr);
  }
  tableEl.append(body);
}

function chart(id, option, values) {
  const node = $(id);
  node.dataset.values = JSON.stringify(values);
  const instance = echarts.getInstanceByDom(node) || echarts.init(node);
  // No animation: the page redraws every 5 s, and what is shown is final.
  instance.setOption(Object.assign({ animation: false }, option), true);
  return instance;
}

// ---- API ----

class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function api(path, options) {
  const response = await fetch(path, Object.assign({ credentials: "same-origin", headers: { "content-type": "application/json" } }, options || {}));
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (response.status === 401 && path !== "/v1/login") {
    showLogin();
    throw new ApiError(401, "login required");
  }
  if (!response.ok) throw new ApiError(response.status, (body && body.error) || response.statusText);
  return body;
}

function query(params) {
  const parts = [];
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") parts.push(`${k}=${encodeURIComponent(v)}`);
  return parts.length ? `?${parts.join("&")}` : "";
}

// ---- filters ----

function chinaDay(offsetDays) {
  const d = new Date(Date.now() + 8 * 3600e3 + (offsetDays || 0) * 86400e3);
  return d.toISOString().slice(0, 10);
}

function storeRegion() {
  const map = {};
  for (const r of me.scope.regions) for (const s of r.stores) map[s.store_id] = r.region;
  return map;
}

function fillFilters() {
  const region = $("f-region");
  region.replaceChildren(el("option", { value: "" }, me.scope.all ? t("all") : t("all_in_scope")));
  for (const r of me.scope.regions) region.append(el("option", { value: r.region }, r.region));
  fillStores();
  if (!$("f-from").value) $("f-from").value = chinaDay(-6);
  if (!$("f-to").value) $("f-to").value = chinaDay(0);
}

function fillStores() {
  const chosen = $("f-region").value;
  const store = $("f-store");
  const keep = store.value;
  store.replaceChildren(el("option", { value: "" }, t("all")));
  for (const r of me.scope.regions) {
    if (chosen && r.region !== chosen) continue;
    for (const s of r.stores) store.append(el("option", { value: s.store_id }, `${s.store_id} ${s.name}`));
  }
  if ([...store.options].some((o) => o.value === keep)) store.value = keep;
}

function filters() {
  return {
    from: $("f-from").value, to: $("f-to").value,
    region: $("f-region").value, store: $("f-store").value,
    group: $("f-group").value,
  };
}

// ---- panels ----

function renderTotals(data) {
  const box = $("totals");
  box.replaceChildren();
  box.dataset.values = JSON.stringify(data);
  for (const [k, v] of Object.entries(data || {})) {
    if (typeof v !== "number") continue;
    const shown = k.endsWith("_cents") ? yuan(v).toLocaleString() : v.toLocaleString();
    box.append(el("div", { class: "card", "data-key": k, "data-value": String(v) }, el("div", { class: "value" }, shown), el("div", { class: "label" }, t(k))));
  }
}

function renderSales(data) {
  const hours = [...Array(24).keys()].map((h) => `${String(h).padStart(2, "0")}:00`);
  const series = data.series || [];
  const sum = (key) => hours.map((_, h) => series.reduce((acc, s) => acc + Number((s[key] || [])[h] || 0), 0));
  const today = sum("today");
  const lastWeek = sum("last_week");
  const values = {
    day: data.day, compare_day: data.compare_day, group: data.group,
    today_cents: today, last_week_cents: lastWeek,
    series: series.map((s) => ({ key: s.key, today_cents: s.today, last_week_cents: s.last_week })),
  };
  chart("chart-sales", {
    tooltip: { trigger: "axis" },
    legend: { type: "scroll", top: 0 },
    grid: { left: 60, right: 20, top: 40, bottom: 30 },
    xAxis: { type: "category", data: hours },
    yAxis: { type: "value" },
    series: [
      ...series.map((s) => ({ id: `group:${s.key}`, name: s.label || s.key, type: "bar", stack: "today", data: (s.today || []).map(yuan) })),
      { id: "today", name: `${t("today")} ${data.day || ""}`, type: "line", data: today.map(yuan), lineStyle: { width: 3 } },
      { id: "last_week", name: `${t("last_week")} ${data.compare_day || ""}`, type: "line", data: lastWeek.map(yuan), lineStyle: { type: "dashed" } },
    ],
  }, values);
  table("table-sales", ["key", "today", "last_week"],
    [...series.map((s) => [s.label && s.label !== s.key ? `${s.key} ${s.label}` : s.key,
      yuan((s.today || []).reduce((a, b) => a + b, 0)), yuan((s.last_week || []).reduce((a, b) => a + b, 0))]),
    [t("total"), yuan(today.reduce((a, b) => a + b, 0)), yuan(lastWeek.reduce((a, b) => a + b, 0))]],
    [false, true, true]);
}

function renderTop(data) {
  const items = data.items || [];
  const shown = [...items].reverse();
  chart("chart-top", {
    tooltip: {}, grid: { left: 110, right: 20, top: 10, bottom: 30 },
    xAxis: { type: "value" }, yAxis: { type: "category", data: shown.map((i) => i.sku) },
    series: [{ id: "units", name: t("qty"), type: "bar", data: shown.map((i) => i.units) }],
  }, items);
  table("table-top", ["sku", "qty", "sales"], items.map((i) => [i.sku, i.units, yuan(i.net_cents)]), [false, true, true]);
}

function renderTags(data) {
  const tags = data.tags || [];
  chart("chart-tags", {
    tooltip: {}, grid: { left: 120, right: 20, top: 10, bottom: 30 },
    xAxis: { type: "value" }, yAxis: { type: "category", data: tags.map((x) => x.tag) },
    series: [{ id: "members", name: t("members"), type: "bar", data: tags.map((x) => x.members) }],
  }, tags);
  table("table-tags", ["tag", "members"], tags.map((x) => [x.tag, x.members]), [false, true]);
}

function renderNew(data) {
  const days = data.days || [];
  chart("chart-new", {
    tooltip: { trigger: "axis" }, grid: { left: 50, right: 20, top: 10, bottom: 30 },
    xAxis: { type: "category", data: days.map((d) => d.day) }, yAxis: { type: "value", minInterval: 1 },
    series: [{ id: "new_members", name: t("new_members"), type: "line", data: days.map((d) => d.members) }],
  }, days);
  table("table-new", ["day", "members"], days.map((d) => [d.day, d.members]), [false, true]);
}

function renderAlerts(data) {
  const f = filters();
  const regionOf = storeRegion();
  // The alert book's newest stock alerts, within the filters' days (China
  // time: occurred_at carries +08:00) and stores; at most 50 shown.
  const day = (a) => String(a.occurred_at || "").slice(0, 10);
  const alerts = (data.alerts || []).filter((a) => a.kind && (!f.store || a.store_id === f.store)
    && (!f.region || regionOf[a.store_id] === f.region)
    && (!f.from || day(a) >= f.from) && (!f.to || day(a) <= f.to)).slice(0, 50);
  $("table-alerts").dataset.values = JSON.stringify(alerts.map((a) => a.alert_id));
  table("table-alerts", ["time", "kind", "store", "sku", "on_hand"],
    alerts.map((a) => [String(a.occurred_at || "").slice(0, 19).replace("T", " "), t(a.kind), a.store_id, a.sku, a.on_hand]),
    [false, false, false, false, true]);
}

function renderTransfers(data) {
  const f = filters();
  const rows = (data.suggestions || []).filter((s) => !f.store || s.from_store === f.store || s.to_store === f.store);
  table("table-transfers", ["sku", "from_store", "to_store", "qty"], rows.map((s) => [s.sku, s.from_store, s.to_store, s.qty]), [false, false, false, true]);
}

async function decide(alertId, decision) {
  try {
    await api(`/v1/alerts/${encodeURIComponent(alertId)}/decision`, { method: "POST", body: JSON.stringify({ decision, comment: "dashboard" }) });
    refresh();
  } catch (e) {
    $("status").textContent = `${t("error")}: ${e.message}`;
  }
}

function renderFraud(data) {
  const alerts = data.alerts || [];
  $("table-fraud").dataset.values = JSON.stringify(alerts.map((a) => a.alert_id));
  const headers = ["time", "rule", "alert", "stores", "amount"];
  if (me.can.decide) headers.push("action");
  table("table-fraud", headers, alerts.map((a) => {
    const row = [String(a.last_at || a.first_at || "").slice(0, 19).replace("T", " "), a.rule, a.alert_id,
      (a.stores || []).join(" "), yuan(a.total_cents)];
    if (me.can.decide) {
      row.push(el("span", {},
        el("button", { type: "button", class: "confirm", "data-alert": a.alert_id, "data-decision": "confirmed_fraud", onclick: () => decide(a.alert_id, "confirmed_fraud") }, t("confirm")),
        " ",
        el("button", { type: "button", class: "dismiss", "data-alert": a.alert_id, "data-decision": "false_alarm", onclick: () => decide(a.alert_id, "false_alarm") }, t("false_alarm"))));
    }
    return row;
  }), [false, false, false, false, true]);
}

const PANELS = [
  { name: "totals", sales: true, url: (f) => `/v1/mart/totals${query({ from: f.from, to: f.to, region: f.region, store: f.store })}`, render: renderTotals },
  { name: "sales", sales: true, url: (f) => `/v1/mart/sales_by_hour${query({ day: f.to, group: f.group, region: f.region, store: f.store })}`, render: renderSales },
  { name: "top", sales: true, url: (f) => `/v1/mart/top_skus${query({ from: f.from, to: f.to, region: f.region, store: f.store, limit: 10 })}`, render: renderTop },
  { name: "tags", sales: true, url: (f) => `/v1/mart/members_by_tag${query({ region: f.region, store: f.store })}`, render: renderTags },
  { name: "new", sales: true, url: (f) => `/v1/mart/new_members${query({ from: f.from, to: f.to, region: f.region, store: f.store })}`, render: renderNew },
  { name: "alerts", sales: true, url: () => "/v1/alerts?kind=stock&limit=200", render: renderAlerts },
  { name: "transfers", sales: true, url: (f) => `/v1/suggestions/transfers${query({ region: f.region })}`, render: renderTransfers },
  { name: "fraud", review: true, url: () => "/v1/alerts?status=open&limit=50", render: renderFraud },
];

function panelVisible(p) {
  if (p.review) return me.can.review_queue;
  return me.can.sales;
}

async function refresh() {
  if (!me) return;
  const f = filters();
  const errors = [];
  await Promise.all(PANELS.filter(panelVisible).map(async (p) => {
    try {
      last[p.name] = await api(p.url(f));
      p.render(last[p.name]);
    } catch (e) {
      if (e.status === 401) return;
      errors.push(`${t(p.name === "sales" ? "sales_by_hour" : p.name)}: ${e.status === 403 ? t("forbidden") : e.message}`);
    }
  }));
  $("status").textContent = errors.join("; ");
  $("updated").textContent = `${t("updated")} ${new Date().toLocaleTimeString()}`;
  document.body.dataset.refreshed = String(Date.now());
}

// ---- views ----

function applyLang() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("lang").textContent = lang === "zh" ? "English" : "中文";
  document.title = t("title");
  if (me) {
    fillFilters();
    for (const p of PANELS) if (last[p.name] && panelVisible(p)) p.render(last[p.name]);
  }
}

function showLogin() {
  me = null;
  if (timer) clearInterval(timer);
  timer = null;
  $("dash-view").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
  $("login-view").hidden = false;
}

function showDashboard(who) {
  me = who;
  $("login-view").hidden = true;
  $("dash-view").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${me.name} (${me.roles.join(", ")})`;
  document.body.dataset.user = me.name;
  $("panel-fraud").hidden = !me.can.review_queue;
  for (const id of ["panel-sales", "panel-top", "panel-tags", "panel-new", "panel-alerts", "panel-transfers", "totals"]) $(id).hidden = !me.can.sales;
  $("filters").hidden = !me.can.sales;
  if (!me.can.sales) $("status").textContent = t("no_sales_role");
  fillFilters();
  refresh();
  if (timer) clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const who = await api("/v1/login", { method: "POST", body: JSON.stringify({ name: $("login-name").value, password: $("login-password").value }) });
    $("login-password").value = "";
    showDashboard(who);
  } catch (e) {
    $("login-error").textContent = e.status === 429 ? t("locked") : e.status === 401 ? t("wrong_login") : `${t("error")}: ${e.message}`;
  }
}

async function logout() {
  try { await fetch("/v1/logout", { method: "POST", credentials: "same-origin" }); } catch (_) { /* logged out anyway */ }
  showLogin();
}

async function start() {
  $("lang").addEventListener("click", () => {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem("storepulse.lang", lang);
    applyLang();
    refresh();
  });
  $("logout").addEventListener("click", logout);
  $("login-form").addEventListener("submit", login);
  $("f-region").addEventListener("change", () => { fillStores(); refresh(); });
  for (const id of ["f-store", "f-from", "f-to", "f-group"]) $(id).addEventListener("change", refresh);
  window.addEventListener("resize", () => document.querySelectorAll(".chart").forEach((n) => { const c = echarts.getInstanceByDom(n); if (c) c.resize(); }));
  applyLang();
  try {
    showDashboard(await api("/v1/me"));
  } catch (_) {
    showLogin();
  }
}

start();
