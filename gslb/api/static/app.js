// gslb status page: draws /v1/status every 2 s. Plain DOM, no libraries, works offline.
// Every value from the server goes in with textContent (an audit reason is operator text).
"use strict";

const REFRESH_MS = 2000;
const SVG = "http://www.w3.org/2000/svg";

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value !== undefined && value !== null) node.setAttribute(key, String(value));
  }
  for (const child of children) {
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Equirectangular: x = lon + 180, y = 90 - lat (the SVG's viewBox is in degrees).
function project(lon, lat) {
  return [lon + 180, 90 - lat];
}

async function drawLand() {
  try {
    const response = await fetch("static/world.json");
    const world = await response.json();
    const land = document.getElementById("land");
    for (const shape of world.land) {
      const points = shape.ring.map(([lon, lat]) => project(lon, lat).join(",")).join(" ");
      land.append(el("svg:polygon", { class: "land", points }, el("svg:title", {}, shape.name)));
    }
  } catch (err) {
    // The markers still show on a blank sea.
  }
}

// The server decides (gslb/status.py region_state): "down" only when no enabled endpoint is
// healthy; a region whose endpoints an operator all disabled is "disabled", never "down".
function regionState(region) {
  return region.state;
}

function endpointSummary(region) {
  const usable = region.endpoints.filter((e) => e.usable).length;
  const disabled = region.endpoints.filter((e) => e.admin === "disabled").length;
  const draining = region.endpoints.filter((e) => e.admin === "draining").length;
  let text = `${usable}/${region.endpoints.length} endpoints usable`;
  if (disabled) text += `, ${disabled} disabled`;
  if (draining) text += `, ${draining} draining`;
  return text;
}

function endpointState(endpoint) {
  if (endpoint.admin === "disabled" || endpoint.admin === "draining") return endpoint.admin;
  return endpoint.usable ? "up" : "down";
}

function percent(fraction) {
  return (100 * fraction).toFixed(1) + "%";
}

// The windows of /v1/status, newest first, then the counts since the server started.
const WINDOWS = ["last_1m", "last_5m"];

function shareCell(fraction, kind) {
  const width = Math.round(60 * fraction);
  return el(
    "td",
    { class: `share ${kind}` },
    el("span", { class: "bar", style: `width:${width}px` }),
    percent(fraction),
  );
}

// One share of a window (or since start): "–" when the window holds no answers at all.
function windowCell(counted, total, kind) {
  if (!counted || !total) return el("td", { class: `share ${kind} none` }, "–");
  const cell = shareCell(counted.share, kind);
  cell.append(el("small", {}, ` (${counted.answers})`));
  return cell;
}

function answersText(n) {
  return n === 1 ? "1 answer" : `${n} answers`;
}

function windowTotal(status, window) {
  return ((status.windows || {})[window] || {}).steered_answers || 0;
}

// The share a region has now: of the last minute's answers; null when there were none.
function currentShare(status, region) {
  return windowTotal(status, "last_1m") ? region.last_1m.share : null;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 0.001) return (seconds * 1e6).toFixed(0) + " µs";
  if (seconds < 1) return (seconds * 1e3).toFixed(2) + " ms";
  return seconds.toFixed(2) + " s";
}

function drawMarkers(status) {
  const layer = document.getElementById("markers");
  layer.replaceChildren();
  for (const region of status.regions) {
    const { lat, lon } = region.location || {};
    if (typeof lat !== "number" || typeof lon !== "number") continue;
    const [x, y] = project(lon, lat);
    const state = regionState(region);
    const share = currentShare(status, region);
    const now = share === null ? "–" : percent(share);
    layer.append(
      el(
        "svg:g",
        { class: "marker", "data-region": region.name, "data-state": state },
        el("svg:circle", { cx: x, cy: y, r: 2.6 + 4 * (share || 0) }),
        el("svg:text", { x: x + 4, y: y + 1.5 }, `${region.name} ${now}`),
        el(
          "svg:title",
          {},
          `${region.name}: ${state} (${endpointSummary(region)}), ${now} of the last` +
            ` minute's answers, ${percent(region.share)} since start`,
        ),
      ),
    );
  }
}

function drawRegions(status) {
  const body = document.querySelector("#regions tbody");
  const rows = [];
  const sinceStart = status.counts.steered_answers;
  for (const region of status.regions) {
    const state = regionState(region);
    rows.push(
      el(
        "tr",
        { class: "region", "data-region": region.name, "data-state": state },
        el("td", {}, region.name),
        el("td", {}, el("span", { class: `state ${state}` }, state)),
        el("td", { class: "admin" }, region.admin),
        el("td", {}, endpointSummary(region)),
        ...WINDOWS.map((w) => windowCell(region[w], windowTotal(status, w), w)),
        windowCell(region, sinceStart, "since_start"),
      ),
    );
    const inRegion = region.endpoints.reduce((sum, e) => sum + e.answers, 0);
    for (const endpoint of region.endpoints) {
      const eState = endpointState(endpoint);
      rows.push(
        el(
          "tr",
          {
            class: "endpoint",
            "data-region": region.name,
            "data-endpoint": endpoint.address,
            "data-state": eState,
          },
          el("td", { title: endpoint.services.join(", ") }, endpoint.address),
          el("td", {}, el("span", { class: `state ${eState}` }, eState)),
          el("td", { class: "admin" }, endpoint.admin),
          el("td", { title: endpoint.detail }, `${endpoint.health}: ${endpoint.detail}`),
          ...WINDOWS.map(() => el("td", {})),
          windowCell(
            { answers: endpoint.answers, share: inRegion ? endpoint.answers / inRegion : 0 },
            inRegion,
            "since_start",
          ),
        ),
      );
    }
  }
  body.replaceChildren(...rows);
}

// Per service: the answers of each window, then each of its regions' share of them.
function drawServices(status) {
  const body = document.querySelector("#services tbody");
  const rows = [];
  for (const service of status.services || []) {
    rows.push(
      el(
        "tr",
        { class: "service", "data-service": service.name },
        el("td", {}, service.name),
        el("td", {}, service.policy || "(not in the config)"),
        ...WINDOWS.map((w) => el("td", { class: w }, answersText((service[w] || {}).answers || 0))),
        el("td", { class: "since_start" }, answersText(service.answers)),
      ),
    );
    for (const region of service.regions) {
      rows.push(
        el(
          "tr",
          { class: "service-region", "data-service": service.name, "data-region": region.name },
          el("td", {}, region.name),
          el("td", {}),
          ...WINDOWS.map((w) => windowCell(region[w], (service[w] || {}).answers, w)),
          windowCell(region, service.answers, "since_start"),
        ),
      );
    }
  }
  body.replaceChildren(...rows);
}

function windowText(status) {
  const parts = [];
  for (const [name, label] of [["last_1m", "last minute"], ["last_5m", "last 5 minutes"]]) {
    const w = (status.windows || {})[name];
    if (!w) continue;
    const covered = Math.floor(w.covered_seconds);
    parts.push(
      covered < w.seconds
        ? `${label}: ${answersText(w.steered_answers)} (the server started ${covered} s ago)`
        : `${label}: ${answersText(w.steered_answers)}`,
    );
  }
  return parts.join(" · ");
}

function drawActions(actions) {
  const body = document.querySelector("#actions tbody");
  if (!actions.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 5, class: "empty" }, "none yet")));
    return;
  }
  body.replaceChildren(
    ...actions.map((a) =>
      el(
        "tr",
        { class: "action" },
        el("td", {}, new Date(a.time * 1000).toLocaleString()),
        el("td", {}, a.actor),
        el("td", {}, a.action),
        el("td", {}, a.target),
        el("td", {}, a.reason || ""),
      ),
    ),
  );
}

function drawCluster(cluster) {
  const section = document.getElementById("cluster");
  if (!cluster) {
    section.hidden = true;
    return;
  }
  section.hidden = false;
  const since = new Date(cluster.since * 1000).toLocaleString();
  const etcd = document.getElementById("cluster-etcd");
  etcd.dataset.state = cluster.connected ? "connected" : "disconnected";
  etcd.textContent = cluster.connected
    ? `node ${cluster.node}: etcd connected since ${since} (revision ${cluster.revision}),` +
      ` ${cluster.live_nodes} live node(s), health quorum ${cluster.health_quorum}`
    : `node ${cluster.node}: etcd DISCONNECTED since ${since} (${cluster.problem});` +
      " answering from the last state, changes are refused";
  document.querySelector("#cluster-nodes tbody").replaceChildren(
    ...cluster.nodes.map((n) =>
      el(
        "tr",
        { class: "node", "data-node": n.name },
        el("td", {}, n.self ? `${n.name} (this node)` : n.name),
        el("td", {}, n.alive ? "alive" : "gone"),
        el("td", {}, `generation ${n.config_generation}` + (n.config_differs ? " · DIFFERENT config" : "")),
        el("td", {}, n.down.length ? n.down.join(", ") : "nothing"),
      ),
    ),
  );
  document.getElementById("cluster-split").replaceChildren(
    ...cluster.disagreements.map((d) => el("li", {}, `${d.endpoint}: ${d.text}`)),
  );
}

function draw(status) {
  document.getElementById("meta").textContent =
    `config generation ${status.generation} · state version ${status.state_version}` +
    ` · updated ${new Date().toLocaleTimeString()}`;
  const banner = document.getElementById("fail-open");
  if (status.fail_open_now.length) {
    banner.textContent =
      "Fail-open: no usable region for " +
      status.fail_open_now.join(", ") +
      " — answering as if every region were healthy.";
    banner.hidden = false;
  } else {
    banner.hidden = true;
  }
  const counts = status.counts;
  document.getElementById("queries").textContent = counts.queries;
  document.getElementById("steered").textContent = counts.steered_answers;
  document.getElementById("fail-open-answers").textContent = counts.fail_open_answers;
  const l = status.latency_seconds;
  document.getElementById("latency").textContent =
    `${duration(l.p50)} / ${duration(l.p95)} / ${duration(l.p99)}`;
  document.getElementById("windows").textContent = windowText(status);
  drawMarkers(status);
  drawRegions(status);
  drawServices(status);
  drawActions(status.recent_actions);
  drawCluster(status.cluster);
}

async function refresh() {
  const connection = document.getElementById("connection");
  try {
    const response = await fetch("v1/status", { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    draw(await response.json());
    connection.dataset.state = "ok";
    connection.textContent = "live";
  } catch (err) {
    connection.dataset.state = "error";
    connection.textContent = `cannot reach the server (${err.message}); retrying`;
  }
}

drawLand();
refresh();
setInterval(refresh, REFRESH_MS);
