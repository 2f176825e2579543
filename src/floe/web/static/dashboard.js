// floe's dashboard: live updates with no library. EventSource for events, fetch for statuses
// and node stats, inline SVG sparklines for the charts (rates computed here from counters).
"use strict";

function text(el, value) { if (el && el.textContent !== String(value)) el.textContent = value; }
function cls(el, prefix, value) {
  if (!el) return;
  el.className = el.className.split(" ").filter(c => !c.startsWith(prefix)).concat(prefix + value).join(" ");
}

async function getJSON(url) {
  const r = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) { const e = new Error(body.error || r.statusText); e.status = r.status; throw e; }
  return body;
}

// -- events ---------------------------------------------------------------------------------
function followEvents(list) {
  if (!list || !window.EventSource) return;
  const shown = [...list.children].map(li => Number(li.dataset.id)).filter(Boolean);
  // Resume after the last event the page was rendered with: none is missed in between.
  const after = shown.length ? "&last_id=" + Math.max(...shown) : "";
  const source = new EventSource(list.dataset.src + after);
  source.onmessage = (m) => {
    const e = JSON.parse(m.data);
    if (list.querySelector(`li[data-id="${e.id}"]`)) return;
    const li = document.createElement("li");
    li.className = "lvl-" + e.level; li.dataset.id = e.id;
    const t = document.createElement("time"); t.textContent = (e.time || "").slice(11, 19);
    const k = document.createElement("span"); k.className = "kind"; k.textContent = e.kind;
    li.append(t, " ", k, " ", (e.cluster_name && !list.dataset.src.includes("cluster=") ? e.cluster_name + ": " : "") + e.message);
    list.append(li);
    while (list.children.length > 200) list.firstElementChild.remove();
    list.scrollTop = list.scrollHeight;
    document.dispatchEvent(new CustomEvent("floe:event", { detail: e }));
  };
  window.addEventListener("pagehide", () => source.close());
}

// -- the cluster list ------------------------------------------------------------------------
function followList(table) {
  const url = "/dashboard/clusters.json?project=" + encodeURIComponent(table.dataset.project);
  let busy = false;
  async function refresh() {
    if (busy || document.hidden) return;
    busy = true;
    try {
      const now = await getJSON(url);
      const shown = new Set([...table.tBodies[0].rows].map(r => r.id.slice(2)).filter(Boolean));
      const listed = Object.keys(now);
      if (listed.length !== shown.size || listed.some(u => !shown.has(u))) { location.reload(); return; }
      for (const [uuid, [status, health, masters, workers]] of Object.entries(now)) {
        const row = document.getElementById("c-" + uuid);
        const st = row.querySelector(".st"), h = row.querySelector(".h");
        text(st, status); cls(st, "s-", status); text(h, health); cls(h, "h-", health);
        text(h.nextElementSibling, masters); text(h.nextElementSibling.nextElementSibling, workers);
      }
    } catch (e) { /* a failed poll is retried at the next tick */ }
    finally { busy = false; }
  }
  setInterval(refresh, 3000);
  document.addEventListener("floe:event", refresh);
}

// -- one cluster -----------------------------------------------------------------------------
const HISTORY = 40;

function sparkline(values, limit, label) {
  const w = 90, h = 22, n = values.length;
  // Scaled to the node's limit where it has one (CPU cores, memory), else to the series' peak;
  // spread over the whole width however few readings there are yet.
  const top = Math.max(limit || 0, ...values, 1e-9);
  const pts = values.map((v, i) => `${(i * w / Math.max(n - 1, 1)).toFixed(1)},${(h - 1 - (v / top) * (h - 4)).toFixed(1)}`);
  return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img" aria-label="${label}">` +
    `<rect width="${w}" height="${h}" fill="#f1f4f9"/>` +
    (n > 1 ? `<polygon fill="#c7d7fe" points="0,${h} ${pts.join(" ")} ${w},${h}"/>` +
             `<polyline fill="none" stroke="#2456d6" stroke-width="1.5" points="${pts.join(" ")}"/>` : "") +
    `</svg><span>${label}</span>`;
}

function human(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0;
  while (bytes >= 1024 && i < units.length - 1) { bytes /= 1024; i++; }
  return bytes.toFixed(bytes < 10 && i ? 1 : 0) + " " + units[i];
}

function followCluster(root) {
  const uuid = root.dataset.uuid;
  const nodes = document.getElementById("nodes");
  const note = document.getElementById("stats-note");
  const last = {}, series = {};
  let gone = false;

  async function status() {
    if (gone) return;
    try {
      const s = await getJSON(`/dashboard/clusters/${uuid}/status.json`);
      const st = document.getElementById("status"), h = document.getElementById("health");
      text(st, s.status); cls(st, "s-", s.status); text(h, s.health_status); cls(h, "h-", s.health_status);
      text(document.getElementById("status-reason"), s.status_reason);
      text(document.getElementById("node-count"), s.node_count);
      text(document.getElementById("master-count"), s.master_count);
      text(document.querySelector("#api-address code"), s.api_address);
      const body = nodes.tBodies[0];
      const names = s.nodes.map(n => n.name);
      const shown = [...body.querySelectorAll("tr[data-node]")].map(r => r.dataset.node);
      if (names.join() !== shown.join()) {
        body.replaceChildren(...s.nodes.map(n => {
          const tr = document.createElement("tr"); tr.dataset.node = n.name;
          for (const v of [n.name, n.role, n.nodegroup, n.address]) { const td = document.createElement("td"); td.textContent = v; tr.append(td); }
          const state = document.createElement("td"); state.className = "state"; tr.append(state);
          const health = document.createElement("td"); health.className = "h"; tr.append(health);
          for (const c of ["cpu", "mem", "net"]) { const td = document.createElement("td"); td.className = "chart " + c; tr.append(td); }
          return tr;
        }));
      }
      for (const n of s.nodes) {
        const tr = body.querySelector(`tr[data-node="${CSS.escape(n.name)}"]`);
        text(tr.querySelector(".state"), n.state);
        const h2 = tr.querySelector(".h"); text(h2, n.health); cls(h2, "h-", n.health); h2.title = n.reason;
      }
    } catch (e) {
      if (e.status === 404) {
        gone = true;
        const st = document.getElementById("status"); text(st, "DELETED"); cls(st, "s-", "DELETED");
        note.innerHTML = 'This cluster is gone. <a href="/dashboard/">Back to the clusters</a>';
      }
    }
  }

  async function stats() {
    if (gone || document.hidden) return;
    let body;
    try { body = await getJSON(`/dashboard/clusters/${uuid}/stats.json`); }
    catch (e) { if (e.status !== 404) text(note, "Live charts unavailable: " + e.message); return; }
    text(note, body.nodes.some(n => n.simulated) ? "Simulated nodes: the charts show made-up load." : "");
    for (const n of body.nodes) {
      const tr = nodes.querySelector(`tr[data-node="${CSS.escape(n.name)}"]`);
      if (!tr || n.cpu_seconds === null) continue;
      const prev = last[n.name]; last[n.name] = n;
      const s = series[n.name] || (series[n.name] = { cpu: [], mem: [], net: [] });
      if (prev && n.time > prev.time) {
        const dt = n.time - prev.time;
        s.cpu.push(Math.max(0, (n.cpu_seconds - prev.cpu_seconds) / dt));
        s.net.push(Math.max(0, (n.rx_bytes + n.tx_bytes - prev.rx_bytes - prev.tx_bytes) / dt));
      }
      s.mem.push(n.memory_bytes);
      for (const k of ["cpu", "mem", "net"]) while (s[k].length > HISTORY) s[k].shift();
      const cpu = s.cpu.length ? s.cpu[s.cpu.length - 1] : 0;
      tr.querySelector(".cpu").innerHTML = sparkline(s.cpu, n.cpu_limit_cores, 
        n.cpu_limit_cores ? `${cpu.toFixed(2)} of ${n.cpu_limit_cores} cores` : `${(cpu * 100).toFixed(0)}% of a core`);
      tr.querySelector(".mem").innerHTML = sparkline(s.mem, n.memory_limit_bytes,
        human(n.memory_bytes) + (n.memory_limit_bytes ? " of " + human(n.memory_limit_bytes) : ""));
      const net = s.net.length ? s.net[s.net.length - 1] : 0;
      tr.querySelector(".net").innerHTML = sparkline(s.net, 0, human(net) + "/s");
    }
  }

  status(); stats();
  setInterval(status, 2000);
  setInterval(stats, 2000);
  document.addEventListener("floe:event", status);
}

document.addEventListener("DOMContentLoaded", () => {
  followEvents(document.getElementById("events"));
  const list = document.getElementById("clusters");
  if (list) followList(list);
  const cluster = document.getElementById("cluster");
  if (cluster) followCluster(cluster);
});
