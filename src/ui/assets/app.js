// Spate's web UI: one script for every page. It reads the REST API under
// /api/v1 and redraws the page every second while the application runs.
"use strict";

const params = new URLSearchParams(location.search);
const POLL_MS = 1000;

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}[c]));
}
function ms(v) {
  if (v === null || v === undefined) return "";
  if (v < 1000) return v.toFixed(v < 10 ? 2 : 0) + " ms";
  if (v < 60000) return (v / 1000).toFixed(1) + " s";
  return (v / 60000).toFixed(1) + " min";
}
function bytes(v) {
  if (v === null || v === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v : v.toFixed(1)) + " " + units[i];
}
function when(epoch) {
  return epoch ? new Date(epoch).toLocaleTimeString() : "";
}
// A batch's time to the millisecond (a manual clock's small times as they are).
function batchTime(t) {
  return t > 1e11 ? when(t).replace(/( [AP]M)?$/, m => "." + String(t % 1000).padStart(3, "0") + m) : String(t);
}
function link(path, extra, text) {
  const q = new URLSearchParams(extra);
  if (params.get("app")) q.set("app", params.get("app"));
  return `<a href="${path}?${esc(q.toString())}">${esc(text)}</a>`;
}
function table(headers, rows, id) {
  const head = headers.map(h => `<th>${esc(h)}</th>`).join("");
  const body = rows.map(r => "<tr>" + r.map(c => typeof c === "number" ? `<td class="num">${c}</td>` : `<td>${c ?? ""}</td>`).join("") + "</tr>").join("");
  return `<table${id ? ` id="${id}"` : ""}><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}
async function get(path) {
  const r = await fetch(path);
  if (!r.ok) throw new Error(`${path}: ${r.status}`);
  return r.headers.get("content-type")?.startsWith("application/json") ? r.json() : r.text();
}

// A line chart of [x, y] points as inline SVG.
function chart(title, points, unit, cls) {
  const w = 420, h = 150, pad = 34;
  if (points.length === 0) return `<div class="chart ${cls}"><h4>${esc(title)}</h4><p>no batches yet</p></div>`;
  const xs = points.map(p => p[0]), ys = points.map(p => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs), y1 = Math.max(1e-9, ...ys);
  const sx = x => pad + (x1 === x0 ? 0 : (x - x0) / (x1 - x0) * (w - 2 * pad));
  const sy = y => h - pad + 10 - y / y1 * (h - 2 * pad);
  const line = points.map(p => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" ");
  const label = unit === "ms" ? ms(y1) : String(Math.round(y1));
  return `<div class="chart ${cls}"><h4>${esc(title)}</h4><svg width="${w}" height="${h}" class="chart-svg">` +
    `<line x1="${pad}" y1="${h - pad + 10}" x2="${w - pad}" y2="${h - pad + 10}" stroke="#999"/>` +
    `<line x1="${pad}" y1="${pad - 10}" x2="${pad}" y2="${h - pad + 10}" stroke="#999"/>` +
    `<text x="2" y="${pad - 12}" font-size="10">${esc(label)}</text>` +
    `<polyline fill="none" stroke="#3a6ea5" stroke-width="1.5" points="${line}"/></svg></div>`;
}

const PAGES = {
  "/": jobsPage, "/jobs/": jobsPage, "/jobs/job/": jobPage, "/stages/": stagesPage,
  "/stages/stage/": stagePage, "/storage/": storagePage, "/executors/": executorsPage,
  "/streaming/": streamingPage,
};

function nav(app) {
  const items = [["/jobs/", "Jobs"], ["/stages/", "Stages"], ["/storage/", "Storage"], ["/executors/", "Executors"], ["/streaming/", "Streaming"]];
  document.getElementById("nav").innerHTML = items.map(([p, t]) => {
    const active = location.pathname === p || (p === "/jobs/" && location.pathname === "/") || location.pathname.startsWith(p) && p !== "/jobs/";
    return link(p, {}, t).replace("<a ", `<a class="${active ? "active" : ""}" `);
  }).join("");
  document.getElementById("app-id").textContent = app.id + (app.attempts[0].completed ? " (ended)" : " (running)");
}

async function jobsPage(base) {
  const jobs = await get(base + "/jobs");
  const rows = jobs.map(j => [
    link("/jobs/job/", {id: j.jobId}, j.jobId), esc(j.name), `<span class="${j.status}">${j.status}</span>`,
    when(j.submissionTime), ms(j.duration),
    `${j.numCompletedStages}/${j.stageIds.length}` + (j.numSkippedStages ? ` (${j.numSkippedStages} skipped)` : ""),
    `${j.numCompletedTasks}/${j.numTasks}` + (j.numFailedTasks ? ` (${j.numFailedTasks} failed)` : ""),
    j.failureReason ? `<div class="error">${esc(j.failureReason)}</div>` : "",
  ]);
  const running = jobs.filter(j => j.status === "RUNNING").length;
  return `<h2>Jobs</h2><p>${jobs.length} jobs, ${running} running</p>` +
    table(["Job", "Action", "Status", "Submitted", "Duration", "Stages", "Tasks", "Failure"], rows, "jobs");
}

function stageRows(stages) {
  return stages.map(s => [
    link("/stages/stage/", {id: s.stageId, attempt: s.attemptId}, `${s.stageId}.${s.attemptId}`), s.jobId, esc(s.name),
    `<span class="${s.status}">${s.status}</span>`, ms(s.duration),
    `${s.numCompleteTasks}/${s.numTasks}` + (s.numFailedTasks ? ` (${s.numFailedTasks} failed)` : ""),
    bytes(s.inputBytes) + ` / ${s.inputRecords} rec`, s.outputRecords, bytes(s.shuffleReadBytes) + ` / ${s.shuffleReadRecords} rec`,
    bytes(s.shuffleWriteBytes) + ` / ${s.shuffleWriteRecords} rec`, bytes(s.diskBytesSpilled),
    s.cachedPartitionsRecomputed,
  ]);
}
const STAGE_HEADERS = ["Stage", "Job", "Kind", "Status", "Duration", "Tasks", "Input", "Output records", "Shuffle read", "Shuffle write", "Spilled", "Cache recomputed"];

async function jobPage(base) {
  const id = params.get("id");
  const [job, stages, svg] = await Promise.all([get(`${base}/jobs/${id}`), get(base + "/stages"), get(`${base}/jobs/${id}/dag.svg`)]);
  const mine = stages.filter(s => s.jobId === job.jobId);
  const m = job.metrics;
  return `<h2>Job ${job.jobId}: ${esc(job.name)} <span class="${job.status}">${job.status}</span></h2>` +
    (job.failureReason ? `<div class="error">${esc(job.failureReason)}</div>` : "") +
    `<p>Submitted ${when(job.submissionTime)}, duration ${ms(job.duration)}; skipped stages: ${esc(job.skippedStageIds.join(", ") || "none")}</p>` +
    `<h3>DAG</h3><div class="dag" id="dag">${svg}</div>` +
    `<h3>Stages</h3>` + table(STAGE_HEADERS, stageRows(mine), "job-stages") +
    (m ? `<h3>What the job ran and redid</h3>` + table(["Tasks run", "Failed", "Stage attempts", "Map outputs recomputed", "Cached partitions recomputed", "Spills", "Spilled", "Peak memory"],
      [[m.tasks_run, m.tasks_failed, m.stage_attempts, m.map_outputs_recomputed, m.cached_partitions_recomputed, m.spills, bytes(m.spilled_bytes), bytes(m.peak_memory)]], "job-metrics") : "");
}

async function stagesPage(base) {
  const stages = await get(base + "/stages");
  return `<h2>Stages</h2>` + table(STAGE_HEADERS, stageRows(stages), "stages");
}

async function stagePage(base) {
  const id = params.get("id"), attempt = params.get("attempt") || "0";
  const s = await get(`${base}/stages/${id}/${attempt}`);
  const q = s.taskSummary;
  const metric = (name, key, f) => [esc(name), ...q[key].map(v => f(v))];
  const summary = table(["Metric", "Min", "25th percentile", "Median", "75th percentile", "Max"], [
    metric("Duration", "duration", ms), metric("Input records", "inputRecords", Math.round),
    metric("Input", "inputBytes", bytes), metric("Output records", "outputRecords", Math.round),
    metric("Shuffle read records", "shuffleReadRecords", Math.round), metric("Shuffle read", "shuffleReadBytes", bytes),
    metric("Shuffle write records", "shuffleWriteRecords", Math.round), metric("Shuffle write", "shuffleWriteBytes", bytes),
    metric("Spilled", "diskBytesSpilled", bytes),
  ], "task-summary");
  const tasks = s.tasks.map(t => {
    const m = t.taskMetrics || {};
    return [t.index, t.attempt, `<span class="${t.status}">${t.status}</span>`, esc(t.executorId), when(t.launchTime), ms(t.duration),
      m.inputRecords ?? "", bytes(m.inputBytes), m.outputRecords ?? "", m.shuffleReadRecords ?? "", bytes(m.shuffleReadBytes), m.shuffleWriteRecords ?? "", bytes(m.shuffleWriteBytes),
      m.spills ?? "", bytes(m.diskBytesSpilled), t.errorMessage ? `<div class="error">${esc(t.errorMessage)}</div>` : ""];
  });
  return `<h2>Stage ${s.stageId} (attempt ${s.attemptId}) of job ${link("/jobs/job/", {id: s.jobId}, s.jobId)}: ${esc(s.name)} <span class="${s.status}">${s.status}</span></h2>` +
    `<p>${s.numCompleteTasks}/${s.numTasks} tasks done, ${s.numFailedTasks} failed, ${s.numActiveTasks} running; task time ${ms(s.executorRunTime)}; cached partitions recomputed ${s.cachedPartitionsRecomputed}</p>` +
    `<h3>Summary over ${q.tasks} successful tasks</h3>` + summary +
    `<h3>Tasks</h3>` + table(["Partition", "Attempt", "Status", "Executor", "Launched", "Duration", "Input records", "Input", "Output records", "Shuffle read records", "Shuffle read", "Shuffle write records", "Shuffle write", "Spills", "Spilled", "Error"], tasks, "tasks");
}

async function storagePage(base) {
  const [rdds, executors] = await Promise.all([get(base + "/storage/rdd"), get(base + "/executors")]);
  const driver = executors[0] || {};
  const rows = rdds.map(r => [r.id, esc(r.name), esc(r.storageLevel), `${r.numCachedPartitions}/${r.numPartitions}`, bytes(r.memoryUsed), bytes(r.diskUsed)]);
  return `<h2>Storage</h2><p>Memory budget in use: ${bytes(driver.memoryUsed)} of ${bytes(driver.maxMemory)}</p>` +
    table(["Dataset", "Name", "Level", "Cached partitions", "In memory", "On disk"], rows, "storage");
}

async function executorsPage(base) {
  const executors = await get(base + "/executors");
  const rows = executors.map(e => [esc(e.id), e.isActive ? "active" : `<span class="failed">lost: ${esc(e.lostReason)}</span>`, e.totalCores,
    e.activeTasks, e.completedTasks, e.failedTasks, ms(e.totalDuration), bytes(e.totalShuffleRead), bytes(e.totalShuffleWrite),
    bytes(e.diskBytesSpilled), e.memoryUsed === null ? "" : `${bytes(e.memoryUsed)} / ${bytes(e.maxMemory)}`]);
  return `<h2>Executors</h2>` + table(["Executor", "Status", "Cores", "Active tasks", "Completed", "Failed", "Task time", "Shuffle read", "Shuffle write", "Spilled", "Memory"], rows, "executors");
}

async function streamingPage(base) {
  let stats, batches;
  try {
    [stats, batches] = await Promise.all([get(base + "/streaming/statistics"), get(base + "/streaming/batches")]);
  } catch (e) {
    return `<h2>Streaming</h2><p>This application has not started a streaming context.</p>`;
  }
  const ordered = batches.slice().reverse();
  const series = key => ordered.map(b => [b.batchTime, b[key]]);
  const charts = chart("Input records per batch", series("inputSize"), "records", "input") +
    chart("Scheduling delay", series("schedulingDelay"), "ms", "scheduling") +
    chart("Processing time", series("processingTime"), "ms", "processing") +
    chart("Total delay", series("totalDelay"), "ms", "total") +
    chart("State rows", ordered.map(b => [b.batchTime, b.state.reduce((a, s) => a + s.rows, 0)]), "rows", "state") +
    chart("Late records per batch", series("lateRecords"), "records", "late");
  const rows = batches.slice(0, 100).map(b => [batchTime(b.batchTime), ms(b.batchDuration), b.inputSize, b.invalidRecords, ms(b.schedulingDelay),
    ms(b.processingTime), ms(b.totalDelay), b.state.map(s => `stream ${s.stream}: ${s.keys} keys, ${s.rows} rows, ${bytes(s.bytes)}`).join("<br>"),
    b.watermarks.map(w => `stream ${w.stream}: ${w.watermark}`).join("<br>"), b.lateRecords]);
  const changes = stats.changes.map(c => [batchTime(c.batchTime), esc(c.kind), esc(c.value)]);
  return `<h2>Streaming</h2><p>Batch interval ${ms(stats.started.batchDuration)}, ${stats.numBatches} batches completed` +
    (stats.stopped ? `; stopped: ${esc(stats.stopped.summary)}` : "") + `</p>` + `<div id="charts">${charts}</div>` +
    (changes.length ? `<h3>Changes</h3>` + table(["After batch", "What", "Value"], changes, "changes") : "") +
    `<h3>Batches (newest first)</h3>` + table(["Batch time", "Interval", "Input records", "Invalid", "Scheduling delay", "Processing time", "Total delay", "State", "Watermarks", "Late records"], rows, "batches");
}

async function appList(apps) {
  document.getElementById("main").innerHTML = `<h2>Applications</h2>` + table(["Application", "Started", "Ended", "Duration"],
    apps.map(a => [`<a href="/jobs/?app=${encodeURIComponent(a.id)}">${esc(a.id)}</a>`, when(a.attempts[0].startTimeEpoch),
      when(a.attempts[0].endTimeEpoch), ms(a.attempts[0].duration)]), "applications");
}

async function render() {
  const apps = await get("/api/v1/applications");
  const chosen = params.get("app");
  const app = chosen ? apps.find(a => a.id === chosen) : (apps.length === 1 ? apps[0] : null);
  if (!app) {
    appList(apps);
    return false;
  }
  nav(app);
  const page = PAGES[location.pathname] || jobsPage;
  const base = "/api/v1/applications/" + encodeURIComponent(app.id);
  document.getElementById("main").innerHTML = await page(base);
  document.getElementById("footer").textContent = "Updated " + new Date().toLocaleTimeString();
  document.body.dataset.updated = String(Date.now());
  document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
  return !app.attempts[0].completed;
}

async function loop() {
  let again = true;
  try {
    again = await render();
  } catch (e) {
    document.getElementById("main").innerHTML = `<p class="failed">${esc(e.message)}</p>`;
  }
  if (again) setTimeout(loop, POLL_MS);
}
loop();
