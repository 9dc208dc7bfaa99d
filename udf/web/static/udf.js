// The views' behaviour: charts (uPlot, shipped beside this file) and the trigger buttons,
// which call Airflow's REST API with the user's own session (the browser sends its cookie).
"use strict";
const AIRFLOW = document.body.dataset.airflow;
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];

function drawCharts() {
  const holder = document.getElementById("series");
  if (!holder) return;
  const data = JSON.parse(holder.textContent);
  for (const el of document.querySelectorAll(".chart")) {
    const found = data[el.dataset.source];
    if (!found || !found.dates.length) {
      el.closest(".panel").querySelector(".empty").hidden = false;
      continue;
    }
    const field = el.dataset.field;
    const xs = found.dates.map((d) => Date.parse(d + "T00:00:00Z") / 1000);
    const series = [{}], columns = [xs], bands = [];
    Object.entries(found.groups).forEach(([group, s], i) => {
      const colour = COLOURS[i % COLOURS.length];
      const at = columns.length;
      columns.push(s[field], s[field + "_low"], s[field + "_high"]);
      series.push({ label: group, stroke: colour, width: 2 },
                  { label: group + " low", stroke: colour, dash: [4, 4], width: 1 },
                  { label: group + " high", stroke: colour, dash: [4, 4], width: 1 });
      bands.push({ series: [at + 2, at + 1], fill: colour + "22" });
    });
    el.dataset.points = JSON.stringify(columns.slice(1));
    new uPlot({ title: el.dataset.title, width: Math.max(el.clientWidth, 420), height: 260,
                series, bands, scales: { x: { time: true } } }, columns, el);
  }
}

async function trigger(dag, conf) {
  const out = document.getElementById("trigger-result");
  const answer = await fetch(`${AIRFLOW}/api/v2/dags/${dag}/dagRuns`, {
    method: "POST", credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ logical_date: null, conf }),
  });
  const body = await answer.json().catch(() => ({}));
  if (answer.ok) {
    out.className = "ok";
    out.textContent = `Triggered ${dag}: run ${body.dag_run_id} (${body.state})`;
  } else {
    out.className = "error";
    out.textContent = `Airflow refused (${answer.status}): ${JSON.stringify(body.detail || body)}`;
  }
  await recentRuns();
}

function formConf(form) {
  const f = new FormData(form), conf = {};
  for (const key of ["experiment", "metric_type", "from_date", "to_date"]) {
    if (f.get(key)) conf[key] = f.get(key);
  }
  const metrics = (f.get("metrics") || "").split(",").map((m) => m.trim()).filter(Boolean);
  if (metrics.length) conf.metrics = metrics;
  conf.force = f.get("force") === "on";
  return conf;
}

async function recentRuns() {
  const list = document.getElementById("recent-runs");
  if (!list) return;
  const items = [];
  for (const dag of list.dataset.dags.split(",")) {
    const answer = await fetch(`${AIRFLOW}/api/v2/dags/${dag}/dagRuns?order_by=-run_after&limit=5`,
                               { credentials: "same-origin" });
    if (!answer.ok) { items.push(`${dag}: ${answer.status}`); continue; }
    for (const run of (await answer.json()).dag_runs) {
      items.push(`${dag} ${run.dag_run_id}: ${run.state} ${JSON.stringify(run.conf)}`);
    }
  }
  if (!items.length) items.push("none yet");
  list.replaceChildren(...items.map((text) => {
    const li = document.createElement("li"); li.textContent = text; return li;
  }));
}

function wireButtons() {
  const form = document.getElementById("trigger");
  if (!form) return;
  for (const button of form.querySelectorAll("button[data-dag]")) {
    button.addEventListener("click", () => trigger(button.dataset.dag, formConf(form)));
  }
  for (const button of document.querySelectorAll("button.recompute")) {
    const row = button.closest("tr");
    button.addEventListener("click", () => trigger(button.dataset.dag, {
      ...(row.dataset.experiment ? { experiment: row.dataset.experiment } : {}),
      metric_type: button.dataset.metricType, metrics: [row.dataset.metric],
      from_date: row.dataset.ds, to_date: row.dataset.ds, force: true,
    }));
  }
  recentRuns();
}

drawCharts();
wireButtons();
