// The pages of the site, built from API V2 answers with DOM calls. Rule: a value from the data is only
// ever set as text (el() children, textContent, setAttribute of a known attribute), never as HTML.
"use strict";

const CONFIG = JSON.parse(document.getElementById("page-config").textContent);
const API = "/api/v2";
const AGENCY_NAMES = { all: "All agencies", osha: "OSHA", faa: "FAA", epa: "EPA" };
const SEVERITIES = ["willful", "repeat", "serious", "other"];
const SVG_NS = "http://www.w3.org/2000/svg";
const PAGE_SIZE = 10;

// ---------------------------------------------------------------------------------------------- helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

const moneyFormat = new Intl.NumberFormat("en-US", { style: "currency", currency: "USD" });
function money(value) {
  if (value === null || value === undefined || value === "") return "—";
  const n = Number(value);
  return Number.isFinite(n) ? moneyFormat.format(n) : "—";
}
const countFormat = new Intl.NumberFormat("en-US");
function count(value) {
  return value === null || value === undefined ? "—" : countFormat.format(Number(value));
}
// Source codes such as "hazmat_civil_penalty" read as words.
function words(value) {
  return String(value).replace(/_/g, " ");
}
function agencyName(agency) {
  return AGENCY_NAMES[agency] || String(agency || "").toUpperCase();
}

// A link that keeps the ?brand= preview.
function href(path) {
  return path + (CONFIG.query || "");
}
function entityHref(key) {
  const [type, rest] = String(key).split("#", 2);
  const kind = { COMPANY: "company", CITY: "city", STATE: "state" }[type];
  return kind ? href(`/${kind}/${encodeURIComponent(rest)}`) : null;
}
function violationHref(id) {
  // ":" is allowed in a path segment: the id stays readable in the address bar.
  return href(`/violation/${encodeURIComponent(id).replace(/%3A/g, ":")}`);
}

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

async function api(path, options) {
  const response = await fetch(API + path, options);
  const type = response.headers.get("content-type") || "";
  const body = type.includes("json") ? await response.json() : null;
  if (!response.ok) throw new ApiError(response.status, (body && body.detail) || response.statusText);
  return body;
}

function relativeTime(iso) {
  const then = Date.parse(iso);
  if (!Number.isFinite(then)) return null;
  const minutes = Math.round((Date.now() - then) / 60000);
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} minute${minutes === 1 ? "" : "s"} ago`;
  const hours = Math.round(minutes / 60);
  if (hours < 48) return `${hours} hour${hours === 1 ? "" : "s"} ago`;
  const days = Math.round(hours / 24);
  return `${days} days ago`;
}

const main = document.getElementById("main");

function show(...nodes) {
  main.replaceChildren(...nodes);
}

function problemView(error, what) {
  if (error instanceof ApiError && error.status === 404) {
    return el("section", { class: "card", role: "alert" },
      el("h1", {}, `We have no record of this ${what}`),
      el("p", {}, `There is no ${what} at this address in our data. It may have been renamed or merged into another name.`),
      el("p", {}, el("a", { href: href("/") }, "Search from the home page")));
  }
  return el("section", { class: "card error", role: "alert" },
    el("h1", {}, "This page could not be loaded"),
    el("p", {}, "Something went wrong on our side while reading the records. Please try again in a moment."),
    el("p", {}, el("button", { class: "action", type: "button", onclick: () => location.reload() }, "Try again")));
}

function emptyRow(columns, text) {
  return el("tr", {}, el("td", { colspan: columns, class: "muted" }, text));
}

function table(caption, headers, rows, emptyText) {
  const head = el("tr", {}, headers.map((h) => el("th", { scope: "col", class: h.num ? "num" : null }, h.label)));
  const body = el("tbody", {}, rows.length ? rows : emptyRow(headers.length, emptyText));
  return el("div", { class: "table-wrap" }, el("table", {}, el("caption", { class: "muted" }, caption), el("thead", {}, head), body));
}

// Tabs (WAI-ARIA tabs pattern: arrow keys move between tabs, the selected one is in the tab order).
function tabs(label, options, selected, onSelect) {
  const list = el("div", { class: "tabs", role: "tablist", "aria-label": label });
  const buttons = options.map((option) =>
    el("button", {
      type: "button",
      role: "tab",
      "data-value": option.value,
      "aria-selected": option.value === selected ? "true" : "false",
      tabindex: option.value === selected ? "0" : "-1",
      onclick: () => choose(option.value, false),
      onkeydown: (event) => {
        const i = options.findIndex((o) => o.value === option.value);
        const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
        if (step) {
          event.preventDefault();
          choose(options[(i + step + options.length) % options.length].value, true);
        }
      },
    }, option.label));
  function choose(value, focus) {
    buttons.forEach((b) => {
      const on = b.dataset.value === value;
      b.setAttribute("aria-selected", on ? "true" : "false");
      b.tabIndex = on ? 0 : -1;
      if (on && focus) b.focus();
    });
    onSelect(value);
  }
  list.append(...buttons);
  return list;
}

// Agencies in the brand's order (its own first), then "all" after the brand's own agencies.
function agencyOptions(present) {
  const lead = CONFIG.lead_agencies.filter((a) => present.includes(a));
  const rest = CONFIG.agencies.filter((a) => present.includes(a) && !lead.includes(a));
  return [...lead, "all", ...rest].map((a) => ({ value: a, label: agencyName(a) }));
}

async function freshness() {
  const target = document.getElementById("freshness");
  try {
    const status = await api("/status");
    const times = (status.datasets || []).map((d) => d.last_ingest).filter(Boolean).sort();
    const when = times.length ? relativeTime(times[times.length - 1]) : null;
    target.textContent = when ? `Data updated ${when}.` : "No data loaded yet.";
    return when;
  } catch (error) {
    target.textContent = "Data freshness unknown.";
    return null;
  }
}

// ------------------------------------------------------------------------------------------------ search
function searchBox() {
  const input = el("input", {
    id: "search",
    type: "search",
    role: "combobox",
    autocomplete: "off",
    "aria-autocomplete": "list",
    "aria-expanded": "false",
    "aria-controls": "search-results",
    placeholder: "e.g. Walmart, Houston, TX",
  });
  const list = el("ul", { id: "search-results", role: "listbox", "aria-label": "Matches", hidden: true });
  const status = el("p", { class: "muted", role: "status", "aria-live": "polite", id: "search-status" });
  let results = [];
  let active = -1;
  let sequence = 0;
  let timer = null;

  function close() {
    list.hidden = true;
    input.setAttribute("aria-expanded", "false");
    input.removeAttribute("aria-activedescendant");
    active = -1;
  }
  function highlight(index) {
    active = index;
    [...list.children].forEach((li, i) => li.setAttribute("aria-selected", i === index ? "true" : "false"));
    if (index >= 0) {
      input.setAttribute("aria-activedescendant", `search-option-${index}`);
      list.children[index].scrollIntoView({ block: "nearest" });
    } else {
      input.removeAttribute("aria-activedescendant");
    }
  }
  function go(result) {
    const link = result && entityHref(result.key);
    if (link) location.assign(link);
  }
  async function lookup() {
    const q = input.value.trim();
    const mine = ++sequence;
    if (q.length < 2) {
      results = [];
      list.replaceChildren();
      close();
      status.textContent = "";
      return;
    }
    let answer;
    try {
      answer = await api(`/search?q=${encodeURIComponent(q)}&limit=8`);
    } catch (error) {
      if (mine === sequence) status.textContent = "Search is not available right now.";
      return;
    }
    if (mine !== sequence) return; // a newer query is on its way
    results = answer.results || [];
    list.replaceChildren(...results.map((r, i) =>
      el("li", { id: `search-option-${i}`, role: "option", "aria-selected": "false", onclick: () => go(r) },
        el("span", {}, r.name || r.key),
        el("span", { class: "muted" }, `${{ company: "Company", city: "City", state: "State" }[r.type] || ""} · ${count(r.count)} violations`))));
    status.textContent = results.length ? `${results.length} matches; use the arrow keys to choose.` : `No company, city or state matches “${q}”.`;
    list.hidden = !results.length;
    input.setAttribute("aria-expanded", results.length ? "true" : "false");
    highlight(-1);
  }
  input.addEventListener("input", () => {
    clearTimeout(timer);
    timer = setTimeout(lookup, 120);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" && results.length) {
      event.preventDefault();
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight((active + 1) % results.length);
    } else if (event.key === "ArrowUp" && results.length) {
      event.preventDefault();
      highlight(active <= 0 ? results.length - 1 : active - 1);
    } else if (event.key === "Enter") {
      event.preventDefault();
      go(results[active >= 0 ? active : 0]);
    } else if (event.key === "Escape") {
      close();
    }
  });
  input.addEventListener("blur", () => setTimeout(close, 200));
  return el("form", { class: "search", role: "search", onsubmit: (e) => e.preventDefault() },
    el("label", { for: "search" }, "Find a company, city or state"), input, list, status);
}

// -------------------------------------------------------------------------------------------- home page
function leaderboard(level) {
  const noun = { company: "companies", city: "cities", state: "states" }[level];
  const section = el("section", { class: "card", id: `top-${level}`, "aria-labelledby": `top-${level}-h` },
    el("h2", { id: `top-${level}-h` }, `Top ${noun}`));
  const state = { by: "penalty", agency: agencyOptions(CONFIG.agencies)[0].value };
  const holder = el("div", { "aria-live": "polite" });
  async function load() {
    holder.replaceChildren(el("p", { class: "muted" }, "Loading…"));
    let answer;
    try {
      answer = await api(`/top?level=${level}&by=${state.by}&agency=${state.agency}&limit=10`);
    } catch (error) {
      holder.replaceChildren(el("p", { class: "error" }, "This leaderboard could not be loaded."));
      return;
    }
    const rows = (answer.entries || []).map((e) =>
      el("tr", {},
        el("td", { class: "num" }, e.rank),
        el("td", {}, el("a", { href: entityHref(e.key) }, e.name || e.key)),
        el("td", { class: "num" }, count(e.count)),
        el("td", { class: "num" }, money(e.penalty))));
    const by = state.by === "penalty" ? "total penalties" : "number of violations";
    holder.replaceChildren(table(`${agencyName(state.agency)}, by ${by}`,
      [{ label: "#", num: true }, { label: "Name" }, { label: "Violations", num: true }, { label: "Penalties", num: true }],
      rows, `No ${agencyName(state.agency)} records yet.`));
  }
  section.append(
    tabs(`Rank ${noun} by`, [{ value: "penalty", label: "By penalties" }, { value: "count", label: "By number" }], state.by,
      (v) => { state.by = v; load(); }),
    tabs(`Agency for top ${noun}`, agencyOptions(CONFIG.agencies), state.agency, (v) => { state.agency = v; load(); }),
    holder);
  load();
  return section;
}

function feedTable(entries, caption, withCompany) {
  const rows = entries.map((v) =>
    el("tr", {},
      el("td", {}, el("a", { href: violationHref(v.violation_id) }, v.date || "date unknown")),
      el("td", {}, agencyName(v.agency)),
      withCompany ? el("td", {}, v.company_name || "—") : null,
      el("td", { class: "hide-phone" }, [v.city, v.state].filter(Boolean).join(", ") || "—"),
      el("td", { class: "num" }, money(v.penalty))));
  const headers = [{ label: "Date" }, { label: "Agency" }];
  if (withCompany) headers.push({ label: "Company" });
  headers.push({ label: "Place" }, { label: "Penalty", num: true });
  const t = table(caption, headers, rows, "No recent violations.");
  t.querySelectorAll("thead th")[headers.length - 2].classList.add("hide-phone");
  return t;
}

function flattenFeed(liveFeed) {
  return Object.entries(liveFeed || {}).flatMap(([agency, list]) => list.map((v) => ({ ...v, agency })));
}

function byNewest(a, b) {
  return String(b.date || "").localeCompare(String(a.date || "")) || String(b.violation_id).localeCompare(String(a.violation_id));
}

async function recentActivity() {
  const section = el("section", { class: "card", "aria-labelledby": "recent-h" }, el("h2", { id: "recent-h" }, "Recent activity"));
  const holder = el("div", {}, el("p", { class: "muted" }, "Loading…"));
  section.append(holder);
  (async () => {
    try {
      const states = (await api("/top?level=state&by=count&agency=all&limit=5")).entries || [];
      const answers = await Promise.all(states.map((s) => api(`/state/${encodeURIComponent(s.key.split("#")[1])}`)));
      const seen = new Set();
      const entries = answers.flatMap((a) => flattenFeed(a.live_feed)).sort(byNewest)
        .filter((v) => !seen.has(v.violation_id) && seen.add(v.violation_id)).slice(0, 10);
      holder.replaceChildren(entries.length
        ? feedTable(entries, "The newest violations in the busiest states", true)
        : el("p", { class: "muted" }, "No violations have been loaded yet."));
    } catch (error) {
      holder.replaceChildren(el("p", { class: "error" }, "Recent activity could not be loaded."));
    }
  })();
  return section;
}

async function homePage() {
  const intro = el("section", {},
    el("h1", {}, CONFIG.name),
    el("p", {}, CONFIG.tagline || "Search a company, a city or a state to see its enforcement record."),
    searchBox(),
    el("p", { class: "muted", id: "home-freshness" }));
  show(intro, ...CONFIG.entity_types.map(leaderboard), await recentActivity());
  const when = await freshness();
  document.getElementById("home-freshness").textContent = when ? `Updated ${when}.` : "";
}

// ----------------------------------------------------------------------------------------- entity pages
function statsList(totals) {
  const item = (label, value) => el("div", {}, el("dt", {}, label), el("dd", {}, value));
  return el("dl", { class: "stats" },
    item("Violations", count(totals.count)),
    item("Penalties", money(totals.penalties)),
    item("First violation", totals.first_date || "—"),
    item("Latest violation", totals.last_date || "—"));
}

function agencyTotalsTable(answer) {
  const agencies = CONFIG.agencies.filter((a) => answer.totals[a]);
  const rows = agencies.map((a) => {
    const t = answer.totals[a];
    const sev = t.severity || {};
    return el("tr", {},
      el("th", { scope: "row" }, agencyName(a)),
      el("td", { class: "num" }, count(t.count)),
      el("td", { class: "num" }, money(t.penalties)),
      el("td", { class: "hide-phone" }, `${t.first_date || "—"} to ${t.last_date || "—"}`),
      el("td", { class: "num hide-phone" }, SEVERITIES.map((s) => `${s} ${count((sev[s] || {}).count || 0)}`).join(" · ")));
  });
  const t = table("Totals per agency", [{ label: "Agency" }, { label: "Violations", num: true }, { label: "Penalties", num: true },
    { label: "Period" }, { label: "By severity", num: true }], rows, "No violations on record.");
  t.querySelectorAll("thead th").forEach((th, i) => { if (i >= 3) th.classList.add("hide-phone"); });
  return t;
}

// Bars: violations per year; dots: penalties per year (own scale). One bar per year with data.
function chart(years, agency) {
  const width = 640, height = 240, left = 44, right = 56, top = 12, bottom = 28;
  const plotW = width - left - right, plotH = height - top - bottom;
  const maxCount = Math.max(1, ...years.map((y) => y.count));
  const maxPenalty = Math.max(1, ...years.map((y) => Number(y.penalty) || 0));
  const first = years.length ? years[0].year : 0;
  const span = years.length ? years[years.length - 1].year - first + 1 : 1;
  const slot = plotW / span;
  const label = `Violations and penalties per year, ${agencyName(agency)}: ` +
    years.map((y) => `${y.year}: ${y.count} violations, ${money(y.penalty)}`).join("; ");
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart-svg" });
  root.append(svg("line", { x1: left, x2: left + plotW, y1: top + plotH, y2: top + plotH, stroke: "#777" }));
  root.append(svg("text", { x: left - 6, y: top + 10, "text-anchor": "end", class: "axis" }, count(maxCount)));
  root.append(svg("text", { x: left + plotW + 4, y: top + 10, class: "axis" }, money(maxPenalty).replace(/\.\d\d$/, "")));
  const every = Math.ceil(span / 12);
  years.forEach((y) => {
    const x = left + (y.year - first) * slot;
    const h = (y.count / maxCount) * plotH;
    const bar = svg("rect", { class: "bar", x: x + slot * 0.15, y: top + plotH - h, width: Math.max(1, slot * 0.7), height: h, "data-year": y.year });
    bar.append(svg("title", {}, `${y.year}: ${count(y.count)} violations`));
    root.append(bar);
    const p = ((Number(y.penalty) || 0) / maxPenalty) * plotH;
    const dot = svg("circle", { class: "dot", cx: x + slot / 2, cy: top + plotH - p, r: 4, "data-year": y.year });
    dot.append(svg("title", {}, `${y.year}: ${money(y.penalty)} in penalties`));
    root.append(dot);
    if ((y.year - first) % every === 0) {
      root.append(svg("text", { x: x + slot / 2, y: height - 8, "text-anchor": "middle", class: "axis" }, y.year));
    }
  });
  return root;
}

function chartSection(answer) {
  const present = Object.keys(answer.series || {}).filter((a) => a !== "all");
  const options = agencyOptions(present);
  const holder = el("div", { class: "chart" });
  const section = el("section", { class: "card", "aria-labelledby": "chart-h" },
    el("h2", { id: "chart-h" }, "Violations and penalties per year"));
  function draw(agency) {
    const years = (answer.series || {})[agency] || [];
    if (!years.length) {
      holder.replaceChildren(el("p", { class: "muted" }, `No dated ${agencyName(agency)} violations.`));
      return;
    }
    const rows = years.map((y) => el("tr", {}, el("th", { scope: "row" }, y.year), el("td", { class: "num" }, count(y.count)), el("td", { class: "num" }, money(y.penalty))));
    holder.replaceChildren(
      el("div", { class: "legend", "aria-hidden": "true" },
        el("span", {}, el("span", { class: "sw", style: "background: var(--primary)" }), "Violations (left scale)"),
        el("span", {}, el("span", { class: "sw", style: "background: #e07b00; border-radius: 50%" }), "Penalties (right scale)")),
      chart(years, agency),
      el("details", {}, el("summary", {}, "Show the numbers as a table"),
        table(`Per year, ${agencyName(agency)}`, [{ label: "Year" }, { label: "Violations", num: true }, { label: "Penalties", num: true }], rows, "")));
  }
  if (options.length > 2 || (options.length === 2 && present.length > 1)) {
    section.append(tabs("Agency shown in the chart", options, options[0].value, draw));
  }
  section.append(holder);
  draw(options[0] ? options[0].value : "all");
  return section;
}

function latestSection(answer, withCompany) {
  const entries = flattenFeed(answer.live_feed).sort(byNewest);
  return el("section", { class: "card", "aria-labelledby": "latest-h" },
    el("h2", { id: "latest-h" }, "Latest violations"),
    feedTable(entries, "The newest violations, up to five per agency", withCompany));
}

async function namesSection(slug, answer) {
  const section = el("section", { class: "card", "aria-labelledby": "names-h" }, el("h2", { id: "names-h" }, "Names in the records"));
  const aliases = answer.profile.aliases || [];
  if (!aliases.length) {
    section.append(el("p", { class: "muted" }, "Only one spelling of this name appears in the records."));
    return section;
  }
  section.append(el("p", {}, `The agencies spell this company ${aliases.length} way${aliases.length === 1 ? "" : "s"}; we count them as one company.`));
  try {
    const names = await api(`/company/${encodeURIComponent(slug)}/names`);
    const rows = (names.names || []).map((n) => el("tr", {},
      el("td", {}, n.name),
      el("td", {}, n.method || "—"),
      el("td", { class: "hide-phone" }, n.matched || "—"),
      el("td", { class: "num" }, n.confidence === null || n.confidence === undefined ? "—" : `${Math.round(Number(n.confidence) * 100)}%`)));
    const t = table("Why these names: how each spelling was matched to this company",
      [{ label: "Spelling" }, { label: "How matched" }, { label: "Matched to" }, { label: "Confidence", num: true }], rows, "");
    t.querySelectorAll("thead th")[2].classList.add("hide-phone");
    section.append(el("details", {}, el("summary", {}, "Why these names"), t));
  } catch (error) {
    section.append(el("ul", {}, aliases.map((a) => el("li", {}, a))));
  }
  return section;
}

// The full history (lake, newest first, cursor pages of the API), shown PAGE_SIZE rows at a time.
// Sorting by penalty needs every row, so it reads the remaining pages first.
function historySection(level, slug, answer) {
  const section = el("section", { class: "card", id: "history", "aria-labelledby": "history-h" }, el("h2", { id: "history-h" }, "Full history"));
  const present = CONFIG.agencies.filter((a) => (answer.agencies || []).includes(a));
  const years = [...new Set(Object.values(answer.series || {}).flat().map((y) => y.year))].sort((a, b) => b - a);
  const agencySelect = el("select", { id: "history-agency" }, el("option", { value: "" }, "All agencies"), present.map((a) => el("option", { value: a }, agencyName(a))));
  const yearSelect = el("select", { id: "history-year" }, el("option", { value: "" }, "All years"), years.map((y) => el("option", { value: y }, y)));
  const sortSelect = el("select", { id: "history-sort" }, el("option", { value: "date" }, "Newest first"), el("option", { value: "penalty" }, "Largest penalty first"));
  const holder = el("div", { "aria-live": "polite" });
  const prev = el("button", { type: "button", id: "history-prev" }, "Previous");
  const next = el("button", { type: "button", id: "history-next" }, "Next");
  const position = el("span", { id: "history-position", role: "status" });
  let rows = [], cursor = null, done = false, page = 0, generation = 0;

  async function fetchPage() {
    const params = new URLSearchParams();
    if (agencySelect.value) params.set("agency", agencySelect.value);
    if (yearSelect.value) params.set("year", yearSelect.value);
    if (cursor) params.set("cursor", cursor);
    params.set("limit", PAGE_SIZE);
    const answerPage = await api(`/${level}/${encodeURIComponent(slug)}/violations?${params}`);
    rows.push(...(answerPage.violations || []));
    cursor = answerPage.next_cursor || null;
    done = !cursor;
  }
  async function ensure(n) {
    while (rows.length < n && !done) await fetchPage();
  }
  async function render() {
    const mine = generation;
    try {
      if (sortSelect.value === "penalty") await ensure(Infinity);
      else await ensure((page + 1) * PAGE_SIZE + 1);
    } catch (error) {
      holder.replaceChildren(el("p", { class: "error" }, "The history could not be loaded. Please try again."));
      return;
    }
    if (mine !== generation) return;
    const ordered = sortSelect.value === "penalty"
      ? [...rows].sort((a, b) => (Number(b.penalty_amount) || 0) - (Number(a.penalty_amount) || 0))
      : rows;
    const shown = ordered.slice(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
    const body = shown.map((v) => el("tr", {},
      el("td", {}, el("a", { href: violationHref(v.violation_id) }, v.event_date || "date unknown")),
      el("td", {}, agencyName(v.agency)),
      el("td", { class: "hide-phone" }, v.violation_type ? words(v.violation_type) : "—"),
      el("td", { class: "hide-phone" }, [v.city, v.state].filter(Boolean).join(", ") || "—"),
      el("td", { class: "num" }, money(v.penalty_amount))));
    const t = table("Every current violation of this record", [{ label: "Date" }, { label: "Agency" }, { label: "Type" }, { label: "Place" }, { label: "Penalty", num: true }],
      body, "No violations match these filters.");
    t.querySelectorAll("thead th").forEach((th, i) => { if (i === 2 || i === 3) th.classList.add("hide-phone"); });
    holder.replaceChildren(t);
    const last = done && (page + 1) * PAGE_SIZE >= ordered.length;
    prev.disabled = page === 0;
    next.disabled = last;
    const from = ordered.length ? page * PAGE_SIZE + 1 : 0;
    position.textContent = `Rows ${from}–${page * PAGE_SIZE + shown.length}` + (done ? ` of ${ordered.length}` : "");
  }
  function restart() {
    generation++;
    rows = []; cursor = null; done = false; page = 0;
    render();
  }
  agencySelect.addEventListener("change", restart);
  yearSelect.addEventListener("change", restart);
  sortSelect.addEventListener("change", () => { page = 0; render(); });
  prev.addEventListener("click", () => { page = Math.max(0, page - 1); render(); });
  next.addEventListener("click", () => { page++; render(); });
  section.append(
    el("div", { class: "filters" },
      el("div", {}, el("label", { for: "history-agency" }, "Agency"), agencySelect),
      el("div", {}, el("label", { for: "history-year" }, "Year"), yearSelect),
      el("div", {}, el("label", { for: "history-sort" }, "Sort"), sortSelect)),
    holder,
    el("div", { class: "pager" }, prev, position, next));
  render();
  return section;
}

function topCompaniesSection(answer) {
  const tops = answer.top_companies || {};
  const present = Object.keys(tops.penalty || {}).filter((a) => a !== "all");
  const state = { by: "penalty", agency: agencyOptions(present)[0].value };
  const holder = el("div", {});
  function draw() {
    const list = ((tops[state.by] || {})[state.agency]) || [];
    const rows = list.map((c, i) => el("tr", {},
      el("td", { class: "num" }, i + 1),
      el("td", {}, el("a", { href: entityHref(c.key) }, c.name || c.key)),
      el("td", { class: "num" }, count(c.count)),
      el("td", { class: "num" }, money(c.penalty))));
    holder.replaceChildren(table(`${agencyName(state.agency)}, by ${state.by === "penalty" ? "penalties" : "number of violations"}`,
      [{ label: "#", num: true }, { label: "Company" }, { label: "Violations", num: true }, { label: "Penalties", num: true }], rows,
      `No ${agencyName(state.agency)} violations here.`));
  }
  const section = el("section", { class: "card", "aria-labelledby": "topco-h" }, el("h2", { id: "topco-h" }, "Top companies here"),
    tabs("Rank companies by", [{ value: "penalty", label: "By penalties" }, { value: "count", label: "By number" }], "penalty", (v) => { state.by = v; draw(); }),
    tabs("Agency for top companies", agencyOptions(present), state.agency, (v) => { state.agency = v; draw(); }),
    holder);
  draw();
  return section;
}

async function citiesSection(code) {
  const section = el("section", { class: "card", "aria-labelledby": "cities-h" }, el("h2", { id: "cities-h" }, "Cities in this state"));
  try {
    const answer = await api(`/top?level=city&by=count&agency=all&state=${encodeURIComponent(code.toUpperCase())}&limit=100`);
    const entries = answer.entries || [];
    section.append(entries.length
      ? el("ul", { class: "cities" }, entries.map((c) => el("li", {}, el("a", { href: entityHref(c.key) }, c.name || c.key), ` — ${count(c.count)} violations`)))
      : el("p", { class: "muted" }, "No cities on record."));
  } catch (error) {
    section.append(el("p", { class: "error" }, "The list of cities could not be loaded."));
  }
  return section;
}

async function entityPage(level) {
  const subject = CONFIG.subject;
  const what = level;
  let answer;
  try {
    answer = await api(`/${level}/${encodeURIComponent(subject)}`);
  } catch (error) {
    show(problemView(error, what));
    freshness();
    return;
  }
  const name = answer.profile.name || subject;
  document.title = `${name} — ${CONFIG.name}`;
  const heading = el("section", {},
    el("p", { class: "muted" }, { company: "Company", city: "City", state: "State" }[level]),
    el("h1", {}, name),
    answer.profile.parent && answer.profile.parent !== name ? el("p", {}, "Part of ", el("strong", {}, answer.profile.parent)) : null,
    answer.profile.industry ? el("p", { class: "muted" }, `Industry (NAICS): ${answer.profile.industry}`) : null);
  const totals = answer.totals.all || { count: 0, penalties: null };
  const overview = el("section", { class: "card", "aria-labelledby": "totals-h" }, el("h2", { id: "totals-h" }, "Totals"), statsList(totals), agencyTotalsTable(answer));
  const parts = [heading, overview, chartSection(answer)];
  if (level === "company") {
    parts.push(latestSection(answer, false), await namesSection(subject, answer), historySection("company", subject, answer));
  } else {
    parts.push(topCompaniesSection(answer), latestSection(answer, true));
    if (level === "state") parts.push(await citiesSection(subject));
  }
  show(...parts);
  freshness();
}

// --------------------------------------------------------------------------------------- violation page
const FIELD_LABELS = [
  ["agency", "Agency", agencyName],
  ["dataset", "Record type", words],
  ["event_date", "Date"],
  ["company_name", "Company (as recorded)"],
  ["address", "Address"],
  ["city", "City"],
  ["state", "State"],
  ["zip", "ZIP code"],
  ["naics_code", "Industry (NAICS)"],
  ["violation_type", "Violation type", words],
  ["severity", "Severity class"],
  ["initial_penalty", "Initial penalty", money],
  ["penalty_amount", "Current penalty", money],
  ["source_id", "Agency's case number"],
];

function summarySection(id) {
  const section = el("section", { class: "card", id: "summary", "aria-labelledby": "summary-h" }, el("h2", { id: "summary-h" }, "Summary"));
  const holder = el("div", { "aria-live": "polite" });
  section.append(holder);
  function showSummary(answer) {
    holder.replaceChildren(el("p", { id: "summary-text" }, answer.summary), el("p", { class: "muted", id: "summary-label" }, answer.label || ""));
  }
  (async () => {
    try {
      const current = await api(`/violations/${encodeURIComponent(id)}/summary`);
      if (current.status === "done") return showSummary(current);
      const asked = await api(`/violations/${encodeURIComponent(id)}/summary`, { method: "POST" });
      if (asked.status === "done") return showSummary(asked);
      holder.replaceChildren(el("p", { id: "summary-pending" }, "A plain-language summary is being written. It will be here when you next open this page; the agency's own description is below."));
    } catch (error) {
      const text = error instanceof ApiError && error.status === 429
        ? "No summary can be written right now (too many requests). The agency's own description is below."
        : "No summary is available right now. The agency's own description is below.";
      holder.replaceChildren(el("p", { class: "muted", id: "summary-unavailable" }, text));
    }
  })();
  return section;
}

function penaltyHistory(versions) {
  const rows = versions.map((v) => el("tr", {},
    el("td", {}, String(v.valid_from || "").slice(0, 10) || "—"),
    el("td", {}, { INSERT: "First recorded", UPDATE: "Changed", DELETE: "Withdrawn" }[v.change_type] || v.change_type || "—"),
    el("td", { class: "num" }, money(v.initial_penalty)),
    el("td", { class: "num" }, money(v.penalty_amount))));
  return table("Every version of this record, oldest first", [{ label: "Recorded" }, { label: "Change" }, { label: "Initial penalty", num: true }, { label: "Penalty", num: true }], rows, "No earlier versions.");
}

async function violationPage() {
  const id = CONFIG.subject;
  let answer;
  try {
    answer = await api(`/violations/${encodeURIComponent(id)}`);
  } catch (error) {
    show(problemView(error, "violation"));
    freshness();
    return;
  }
  const record = answer.record || {};
  const versions = answer.versions || [];
  const title = `${agencyName(record.agency)} violation, ${record.event_date || "date unknown"}`;
  document.title = `${title} — ${CONFIG.name}`;
  const fields = el("dl", { class: "fields" });
  for (const [name, label, format] of FIELD_LABELS) {
    const value = record[name];
    if (value === null || value === undefined || value === "") continue;
    fields.append(el("dt", {}, label), el("dd", { "data-field": name }, format ? format(value) : value));
  }
  const companyLink = record.company_slug ? el("p", {}, "Company record: ", el("a", { href: href(`/company/${encodeURIComponent(record.company_slug)}`) }, record.company_name || record.company_slug)) : null;
  // Initial -> current: the first version's penalty (or the record's initial penalty) against today's.
  const first = versions.length ? versions[0] : {};
  const before = first.penalty_amount ?? record.initial_penalty;
  const moved = before !== null && before !== undefined && record.penalty_amount !== null && record.penalty_amount !== undefined && Number(before) !== Number(record.penalty_amount);
  const change = moved ? el("p", { id: "penalty-change", class: "notice" }, `Penalty changed: ${money(before)} → ${money(record.penalty_amount)}`) : null;
  const deleted = answer.deleted ? el("p", { class: "notice" }, "The agency has withdrawn this record; it is shown as last published.") : null;
  const source = /^https?:\/\//.test(answer.agency_url || "") ? answer.agency_url : null;
  const lineage = answer.lineage || {};
  show(
    el("section", {}, el("p", { class: "muted" }, "Violation"), el("h1", {}, title), companyLink, deleted),
    el("section", { class: "card", "aria-labelledby": "record-h" }, el("h2", { id: "record-h" }, "The record"), fields,
      source ? el("p", {}, el("a", { href: source, rel: "noopener noreferrer", id: "source-link" }, "See this case on the agency's own site")) : el("p", { class: "muted" }, "The agency publishes no page for this record.")),
    summarySection(id),
    el("section", { class: "card", "aria-labelledby": "desc-h" }, el("h2", { id: "desc-h" }, "The agency's description"),
      record.description ? el("p", { class: "description", id: "raw-description" }, record.description) : el("p", { class: "muted" }, "The record has no description.")),
    el("section", { class: "card", "aria-labelledby": "penalty-h" }, el("h2", { id: "penalty-h" }, "Penalty history"), change, penaltyHistory(versions)),
    el("section", { class: "card", "aria-labelledby": "lineage-h" }, el("h2", { id: "lineage-h" }, "Where this record comes from"),
      el("p", { class: "muted" }, `Source file: ${lineage.source_uri || "unknown"}; loaded ${lineage.ingested_at ? String(lineage.ingested_at).slice(0, 10) : "on an unknown date"}.`)));
  freshness();
}

// ------------------------------------------------------------------------------------------------ start
const PAGES = { home: homePage, company: () => entityPage("company"), city: () => entityPage("city"), state: () => entityPage("state"), violation: violationPage };
(PAGES[CONFIG.page] || homePage)().catch(() => show(problemView(new Error("page"), "page")));
