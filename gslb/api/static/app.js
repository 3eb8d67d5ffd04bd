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
  const text = `${usable}/${region.endpoints.length} endpoints usable`;
  return disabled ? `${text}, ${disabled} disabled` : text;
}

function endpointState(endpoint) {
  if (endpoint.admin === "disabled") return "disabled";
  return endpoint.usable ? "up" : "down";
}

function percent(fraction) {
  return (100 * fraction).toFixed(1) + "%";
}

function shareCell(fraction) {
  const width = Math.round(60 * fraction);
  return el("td", {}, el("span", { class: "bar", style: `width:${width}px` }), percent(fraction));
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 0.001) return (seconds * 1e6).toFixed(0) + " µs";
  if (seconds < 1) return (seconds * 1e3).toFixed(2) + " ms";
  return seconds.toFixed(2) + " s";
}

function drawMarkers(regions) {
  const layer = document.getElementById("markers");
  layer.replaceChildren();
  for (const region of regions) {
    const { lat, lon } = region.location || {};
    if (typeof lat !== "number" || typeof lon !== "number") continue;
    const [x, y] = project(lon, lat);
    const state = regionState(region);
    const label = `${region.name} ${percent(region.share)}`;
    layer.append(
      el(
        "svg:g",
        { class: "marker", "data-region": region.name, "data-state": state },
        el("svg:circle", { cx: x, cy: y, r: 2.6 + 4 * region.share }),
        el("svg:text", { x: x + 4, y: y + 1.5 }, label),
        el(
          "svg:title",
          {},
          `${region.name}: ${state} (${endpointSummary(region)}), ${percent(region.share)} of answers`,
        ),
      ),
    );
  }
}

function drawRegions(regions) {
  const body = document.querySelector("#regions tbody");
  const rows = [];
  for (const region of regions) {
    const state = regionState(region);
    rows.push(
      el(
        "tr",
        { class: "region", "data-region": region.name, "data-state": state },
        el("td", {}, region.name),
        el("td", {}, el("span", { class: `state ${state}` }, state)),
        el("td", { class: "admin" }, region.admin),
        el("td", {}, endpointSummary(region)),
        el("td", {}, region.answers),
        shareCell(region.share),
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
          el("td", {}, endpoint.answers),
          shareCell(inRegion ? endpoint.answers / inRegion : 0),
        ),
      );
    }
  }
  body.replaceChildren(...rows);
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
  drawMarkers(status.regions);
  drawRegions(status.regions);
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
