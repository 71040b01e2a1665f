// arbor's dashboard: a little plain JavaScript, no framework, no build step. Every page works without
// it; it adds relative times, copy buttons, confirmation of actions, table filters and the live log.
"use strict";

(function () {
  // Relative times ("3 minutes ago"); the absolute time stays in the title (shown on hover).
  const units = [
    ["year", 365 * 24 * 3600], ["month", 30 * 24 * 3600], ["week", 7 * 24 * 3600],
    ["day", 24 * 3600], ["hour", 3600], ["minute", 60], ["second", 1],
  ];
  const relative = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  function refreshTimes() {
    const now = Date.now();
    for (const element of document.querySelectorAll("time[datetime][data-relative]")) {
      const then = Date.parse(element.getAttribute("datetime"));
      if (Number.isNaN(then)) continue;
      const seconds = Math.round((then - now) / 1000);
      const [unit, size] = units.find(([, size]) => Math.abs(seconds) >= size) || units[units.length - 1];
      element.textContent = relative.format(Math.round(seconds / size), unit);
    }
  }

  // Copy buttons: <button class="copy" data-copy="full value">.
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.copy[data-copy]");
    if (!button) return;
    const value = button.getAttribute("data-copy");
    const done = () => {
      button.classList.add("copied");
      const label = button.textContent;
      button.textContent = "copied";
      setTimeout(() => { button.textContent = label; button.classList.remove("copied"); }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(value).then(done, () => prompt("Copy:", value));
    } else {
      prompt("Copy:", value);
    }
  });

  // Actions that cannot be undone ask first: <form data-confirm="Cancel job 12?">.
  document.addEventListener("submit", (event) => {
    const message = event.target.getAttribute("data-confirm");
    if (message && !window.confirm(message)) event.preventDefault();
  });

  // Table filters: <input data-filter="table-id"> hides rows whose text does not contain the query.
  document.addEventListener("input", (event) => {
    const input = event.target.closest("input[data-filter]");
    if (!input) return;
    const table = document.getElementById(input.getAttribute("data-filter"));
    if (!table) return;
    const query = input.value.trim().toLowerCase();
    let shown = 0;
    for (const row of table.tBodies[0].rows) {
      const visible = !query || row.textContent.toLowerCase().includes(query);
      row.hidden = !visible;
      if (visible) shown += 1;
    }
    const counter = document.querySelector(`[data-filter-count="${input.getAttribute("data-filter")}"]`);
    if (counter) counter.textContent = String(shown);
  });

  // The live log: <pre class="log" data-stream="/api/v1/jobs/12/log" data-last-seq="40">.
  // Lines arrive as Server-Sent Events (id = the line's number); when the connection drops the browser
  // reconnects with Last-Event-ID, so the server resumes after the last line shown, and a line already
  // shown is never shown twice. Lines are appended in one batch per frame (a 100,000-line log arrives
  // in batches of up to 10,000 events), and the view follows the end only
  // while the reader is at the end: scrolling up keeps the position, "Follow the end" comes back.
  const LINES_PER_FRAME = 2000;
  function followLog(log) {
    const url = log.getAttribute("data-stream");
    const status = document.getElementById(log.getAttribute("data-status") || "");
    const count = document.getElementById("log-count");
    const followButton = document.getElementById("log-follow");
    let lastSeq = Number(log.getAttribute("data-last-seq") || "0");
    let shown = 0;
    let pending = [];
    let scheduled = false;
    let following = true;
    const atEnd = () => log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    const setFollowing = (value) => {
      following = value;
      if (followButton) followButton.hidden = value;
    };
    log.addEventListener("scroll", () => setFollowing(atEnd()));
    if (followButton) {
      followButton.addEventListener("click", () => { log.scrollTop = log.scrollHeight; setFollowing(true); });
    }
    const say = (text) => { if (status) status.textContent = text; };
    const flush = () => {
      scheduled = false;
      if (pending.length === 0) return;
      // At most a frame's worth of lines at a time: a long log arrives faster than it can be laid out,
      // and one huge batch would freeze the page.
      const batch = pending.length > LINES_PER_FRAME ? pending.splice(0, LINES_PER_FRAME) : pending.splice(0);
      // Each batch is a block of its own. The newest is laid out in full (so the end is where it seems);
      // once another follows it is "settled": the browser skips it while it is off screen and keeps its
      // size (content-visibility), so a long log costs a frame per batch, not the whole log per frame.
      const previous = log.lastElementChild;
      if (previous && previous.classList.contains("log-chunk")) previous.classList.add("settled");
      const fragment = document.createElement("div");
      fragment.className = "log-chunk";
      for (const [seq, text] of batch) {
        const line = document.createElement("span");
        line.className = "line";
        line.id = `L${seq}`;
        line.dataset.seq = String(seq);
        line.textContent = text;
        fragment.appendChild(line);
      }
      shown += batch.length;
      const follow = following;
      log.appendChild(fragment);
      if (follow) log.scrollTop = log.scrollHeight;
      if (count) count.textContent = `${shown} lines`;
      if (pending.length > 0) schedule();
    };
    const schedule = () => {
      if (scheduled) return;
      scheduled = true;
      // A hidden tab gets no animation frames; a timer still flushes there.
      if (document.hidden) setTimeout(flush, 250); else requestAnimationFrame(flush);
    };
    const separator = url.includes("?") ? "&" : "?";
    const source = new EventSource(`${url}${separator}after=${lastSeq}`);
    say("following the log…");
    source.onmessage = (event) => {
      const seq = Number(event.lastEventId);
      if (seq && seq <= lastSeq) return;
      if (seq) lastSeq = seq;
      pending.push([seq, event.data]);
      schedule();
    };
    source.addEventListener("end", (event) => {
      flush();
      source.close();
      let end = {};
      try { end = JSON.parse(event.data); } catch (error) { end = {}; }
      say(`the job ended: ${end.state || "ended"}`);
      const badge = document.querySelector("[data-job-state]");
      if (badge && end.state) {
        badge.setAttribute("data-job-state", end.state);
        badge.innerHTML = "";
        const pill = document.createElement("span");
        pill.className = `status status-${end.state}`;
        pill.textContent = end.state;
        badge.appendChild(pill);
      }
      for (const form of document.querySelectorAll("form[action$='/cancel']")) form.hidden = true;
    });
    source.onerror = () => { if (source.readyState !== EventSource.CLOSED) say("connection lost; reconnecting…"); };
    source.onopen = () => { say("following the log…"); };
    // The phase, as the API reports it, while the job runs.
    const phase = document.getElementById("job-phase");
    if (phase) {
      const timer = setInterval(() => {
        if (source.readyState === EventSource.CLOSED) { clearInterval(timer); return; }
        fetch(url.replace(/\/log$/, ""), { headers: { Accept: "application/json" } })
          .then((response) => (response.ok ? response.json() : null))
          .then((job) => { if (job && job.phase) phase.textContent = job.phase; })
          .catch(() => {});
      }, 5000);
    }
  }

  function start() {
    refreshTimes();
    setInterval(refreshTimes, 30_000);
    for (const log of document.querySelectorAll("pre.log[data-stream]")) followLog(log);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
