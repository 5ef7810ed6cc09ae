// Ferry console: progressive enhancement only. Every page works without this
// script; with it, forms marked data-enhance update in place, a running
// invocation streams its status and logs, and a function's numbers refresh.
"use strict";

// Forms with data-enhance="#id": post with fetch and swap in that element of
// the answered page (the same page the server renders without script).
document.querySelectorAll("form[data-enhance]").forEach((form) => {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button[type=submit]");
    const target = document.querySelector(form.dataset.enhance);
    if (button) button.disabled = true;
    try {
      const res = await fetch(form.action, { method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin" });
      const doc = new DOMParser().parseFromString(await res.text(), "text/html");
      const fresh = doc.querySelector(form.dataset.enhance) || doc.querySelector("#error");
      if (fresh && target) target.replaceWith(fresh);
      else form.submit();
    } catch (e) {
      form.submit();
    } finally {
      if (button) button.disabled = false;
    }
  });
});

// A running invocation: follow its logs as a stream of server-sent events
// until it is final, then reload; without EventSource, or when the stream
// fails, poll its data instead.
const live = document.querySelector("#inv-status[data-live]");
if (live) {
  const logs = document.querySelector("#logs");
  const poll = async () => {
    try {
      const res = await fetch(live.dataset.src, { credentials: "same-origin" });
      if (res.ok) {
        const d = await res.json();
        if (logs && d.logs) logs.textContent = d.logs;
        if (d.final) { location.reload(); return; }
      }
    } catch (e) { /* try again */ }
    setTimeout(poll, 1000);
  };
  if (window.EventSource && logs && live.dataset.follow) {
    const es = new EventSource(live.dataset.follow);
    let text = ""; // the stream starts with the output so far
    es.addEventListener("logs", (ev) => {
      text += JSON.parse(ev.data).text;
      logs.textContent = text;
      logs.dataset.via = "stream";
    });
    es.addEventListener("end", () => { es.close(); location.reload(); });
    es.onerror = () => { es.close(); setTimeout(poll, 1000); };
  } else {
    setTimeout(poll, 1000);
  }
}

// A function's numbers: refresh every 15 s while the page is visible.
const stats = document.querySelector("#stats[data-src]");
if (stats) {
  const fmtMS = (ms) => ms <= 0 ? "–" : ms < 10 ? ms.toFixed(1) + " ms" : ms < 1000 ? Math.round(ms) + " ms" : (ms / 1000).toFixed(2) + " s";
  setInterval(async () => {
    if (document.hidden) return;
    try {
      const res = await fetch(stats.dataset.src, { credentials: "same-origin" });
      if (!res.ok) return;
      const d = await res.json();
      const set = (k, v) => { const el = stats.querySelector(`[data-k="${k}"]`); if (el) el.textContent = v; };
      set("invocations", d.invocations);
      set("error_rate", d.invocations ? (100 * d.error_rate).toFixed(1) + "%" : "–");
      set("p50_ms", fmtMS(d.p50_ms));
      set("p99_ms", fmtMS(d.p99_ms));
      set("cold_starts", d.cold_starts);
    } catch (e) { /* keep the old numbers */ }
  }, 15000);
}
