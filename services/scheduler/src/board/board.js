// fedflow board: keeps a job page's statuses live from its Server-Sent Events
// (/jobs/{id}/events, what WatchJob streams). No page reload: status cells, the DAG's nodes,
// the job status and reasons are changed in place. Served as is, nothing to build.
(function () {
  "use strict";
  var root = document.querySelector("[data-job]");
  if (!root || !window.EventSource) return;
  var live = document.querySelector("[data-live]");
  function setLive(text) { if (live) live.textContent = text; }

  // The newest version seen per component: an event of an older version is ignored.
  var versions = {};
  document.querySelectorAll("[data-version-of]").forEach(function (el) {
    var v = parseInt(el.textContent, 10);
    if (!isNaN(v)) versions[el.getAttribute("data-version-of")] = v;
  });

  function setStatus(el, status) {
    el.textContent = status;
    el.className = "status s-" + status;
  }

  function onTask(e) {
    var known = versions[e.component];
    if (known !== undefined && e.version < known) return;
    if (known === undefined || e.version > known) {
      versions[e.component] = e.version;
      document.querySelectorAll("[data-version-of]").forEach(function (el) {
        if (el.getAttribute("data-version-of") === e.component) el.textContent = String(e.version);
      });
    }
    var key = e.who ? e.component + "|" + e.who : e.component;
    document.querySelectorAll("[data-status-of]").forEach(function (el) {
      if (el.getAttribute("data-status-of") === key) setStatus(el, e.status);
    });
    if (e.who) return;
    document.querySelectorAll("g.node").forEach(function (g) {
      if (g.getAttribute("data-component") !== e.component) return;
      g.setAttribute("class", "node s-" + e.status);
      var text = g.querySelector("[data-status-text]");
      if (text) text.textContent = e.status;
    });
    document.querySelectorAll("[data-reason-of]").forEach(function (el) {
      if (el.getAttribute("data-reason-of") === e.component) el.textContent = e.reason || "";
    });
  }

  function onJob(e) {
    var el = document.querySelector("[data-job-status]");
    if (el) setStatus(el, e.status);
    var progress = document.querySelector("[data-job-progress]");
    if (progress && e.status === "success") progress.textContent = "100%";
    var reason = document.querySelector("[data-job-reason]");
    if (reason && e.reason) {
      reason.textContent = e.status === "waiting" ? "waiting in the queue: " + e.reason : e.reason;
      reason.hidden = false;
    } else if (reason && e.status === "running") {
      reason.hidden = true;
    }
  }

  var source = new EventSource(root.getAttribute("data-events"));
  source.onopen = function () { setLive("live updates: on"); };
  source.onmessage = function (m) {
    var e;
    try { e = JSON.parse(m.data); } catch (err) { return; }
    if (e.kind === "task") onTask(e); else if (e.kind === "job") onJob(e);
    setLive("live updates: on (last " + new Date().toLocaleTimeString() + ")");
  };
  source.addEventListener("end", function () {
    source.close();
    setLive("live updates: the job has ended");
  });
  source.onerror = function () { setLive("live updates: reconnecting…"); };
})();
