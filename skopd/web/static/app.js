// skopd dashboard: plain JavaScript, no build step. Every server-provided string reaches the
// page through textContent or setAttribute, never through innerHTML.
"use strict";

(() => {
  const KEY_STORE = "skopd.apiKey";
  const JOB_EVENTS = ["status", "page", "document", "warning", "done"];
  const BACKOFF_MIN_MS = 250;
  const BACKOFF_MAX_MS = 5000;
  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // ---- HTTP ---------------------------------------------------------------------------

  function apiKey() {
    return $("api-key").value.trim();
  }

  function authHeaders() {
    const key = apiKey();
    return key ? { "X-API-Key": key } : {};
  }

  async function api(path, { method = "GET", body } = {}) {
    const headers = authHeaders();
    const init = { method, headers, cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    try {
      return await fetch(path, init);
    } catch (err) {
      throw new ApiError(0, "the daemon cannot be reached");
    }
  }

  async function apiJson(path, options) {
    const resp = await api(path, options);
    let data = null;
    try {
      data = await resp.json();
    } catch (err) {
      data = null;
    }
    if (!resp.ok) {
      const message = data && typeof data.message === "string" ? data.message : `HTTP ${resp.status}`;
      throw new ApiError(resp.status, message);
    }
    return data;
  }

  // A 4xx other than 429 will not get better by retrying; anything else (network, 5xx) may.
  function isFinal(err) {
    return err instanceof ApiError && err.status >= 400 && err.status < 500 && err.status !== 429;
  }

  // Server paths only: a download_url that is not a same-origin path is not linked.
  function serverPath(value) {
    return typeof value === "string" && value.startsWith("/") && !value.startsWith("//")
      ? value
      : null;
  }

  // ---- DOM helpers --------------------------------------------------------------------

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  function setBadge(node, status) {
    node.textContent = status || "";
    node.className = `badge badge-${status || "unknown"}`;
    node.dataset.status = status || "";
  }

  function when(iso) {
    const t = Date.parse(iso);
    return Number.isNaN(t) ? "" : new Date(t).toLocaleString();
  }

  function duration(seconds) {
    if (seconds < 60) return `${seconds} s`;
    const minutes = Math.floor(seconds / 60);
    return minutes < 60 ? `${minutes} min ${seconds % 60} s` : `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
  }

  function megabytes(mb) {
    if (mb >= 1) return `${mb.toFixed(2)} MB`;
    return mb >= 0.001 ? `${mb.toFixed(3)} MB` : "< 0.001 MB";
  }

  function eta(status) {
    if (!status.is_active || !status.estimated_completion) return "-";
    const t = Date.parse(status.estimated_completion);
    if (Number.isNaN(t)) return "-";
    const left = Math.max(0, Math.round((t - Date.now()) / 1000));
    return `${new Date(t).toLocaleTimeString()} (in ${duration(left)})`;
  }

  function notice(message) {
    const node = $("notice");
    node.textContent = message || "";
    node.hidden = !message;
  }

  // ---- Event streams ------------------------------------------------------------------

  // Browsers cannot put the key on an EventSource, so each (re)connect mints a short-lived token.
  async function streamUrl(path, jobId, lastId) {
    const params = new URLSearchParams();
    if (apiKey()) {
      const minted = await apiJson("scrape/events/token", {
        method: "POST",
        body: jobId ? { job_id: jobId } : {},
      });
      params.set("token", minted.token);
    }
    if (lastId > 0) params.set("last_event_id", String(lastId));
    const query = params.toString();
    return query ? `${path}?${query}` : path;
  }

  // One EventSource that reconnects by itself: on error it closes, waits, mints a fresh token
  // and resumes after the last event id seen; events at or below that id are dropped, so a
  // replay never repeats what the page already shows.
  class Stream {
    constructor({ path, jobId = null, events, onEvent, onState = () => {}, before = null }) {
      Object.assign(this, { path, jobId, events, onEvent, onState, before });
      this.lastId = 0;
      this.backoff = BACKOFF_MIN_MS;
      this.es = null;
      this.timer = null;
      this.stopped = false;
    }

    start() {
      this.stopped = false;
      this.connect();
    }

    stop(reason = "closed") {
      this.stopped = true;
      clearTimeout(this.timer);
      if (this.es) this.es.close();
      this.es = null;
      this.onState(reason);
    }

    async connect() {
      if (this.stopped) return;
      this.onState("connecting");
      let url;
      try {
        if (this.before) await this.before();
        url = await streamUrl(this.path, this.jobId, this.lastId);
      } catch (err) {
        if (isFinal(err)) this.stop(`stopped: ${err.message}`);
        else this.retry();
        return;
      }
      if (this.stopped) return;
      const es = new EventSource(url);
      this.es = es;
      es.onopen = () => {
        this.backoff = BACKOFF_MIN_MS;
        this.onState("live");
      };
      for (const name of this.events) {
        es.addEventListener(name, (ev) => this.receive(es, name, ev));
      }
      // The server's `error` events and the connection's failures share one event type.
      es.addEventListener("error", (ev) => {
        if (ev instanceof MessageEvent) this.receive(es, "error", ev);
        else if (this.es === es) this.dropped(es);
      });
    }

    receive(es, name, ev) {
      if (this.es !== es || this.stopped) return;
      if (ev.lastEventId !== "") {
        const id = Number(ev.lastEventId);
        if (Number.isFinite(id)) {
          if (id <= this.lastId) return;
          this.lastId = id;
        }
      }
      let data;
      try {
        data = JSON.parse(ev.data);
      } catch (err) {
        return;
      }
      this.onEvent(name, data);
    }

    dropped(es) {
      es.close();
      this.es = null;
      this.retry();
    }

    retry() {
      if (this.stopped) return;
      this.onState("reconnecting");
      clearTimeout(this.timer);
      this.timer = setTimeout(() => this.connect(), this.backoff);
      this.backoff = Math.min(this.backoff * 2, BACKOFF_MAX_MS);
    }
  }

  // ---- Job list -----------------------------------------------------------------------

  const list = { rows: new Map(), cursor: null, stream: null };

  function jobRow(jobId) {
    const link = el(
      "a",
      { href: `#job/${encodeURIComponent(jobId)}` },
      el("span", { class: "job-id" }, jobId),
      el("span", { class: "badge" }),
      el("span", { class: "job-message" }),
      el("time", { class: "job-time" }),
    );
    return el("li", { "data-job-id": jobId }, link);
  }

  // Rows are updated in place, so a row is never swapped out from under a click.
  function fillRow(row, status) {
    row.dataset.status = status.status || "";
    setBadge(row.querySelector(".badge"), status.status);
    row.querySelector(".job-message").textContent = status.message || "";
    row.querySelector(".job-time").textContent = when(status.created_at);
  }

  function upsertJob(status, { prepend = false, onlyExisting = false } = {}) {
    if (!status || typeof status.job_id !== "string") return;
    let row = list.rows.get(status.job_id);
    if (!row) {
      if (onlyExisting) return;
      row = jobRow(status.job_id);
      list.rows.set(status.job_id, row);
      if (prepend) $("job-list").prepend(row);
      else $("job-list").append(row);
    }
    fillRow(row, status);
  }

  async function loadJobs({ more = false } = {}) {
    const params = new URLSearchParams({ limit: "20" });
    if (more && list.cursor) params.set("cursor", list.cursor);
    const page = await apiJson(`scrape/jobs?${params}`);
    if (!more) {
      list.rows.clear();
      $("job-list").replaceChildren();
    }
    for (const status of page.jobs || []) upsertJob(status);
    list.cursor = page.next_cursor || null;
    $("more-jobs").hidden = !list.cursor;
    notice("");
  }

  function startJobList() {
    if (list.stream) list.stream.stop();
    list.stream = new Stream({
      path: "scrape/events",
      events: ["status"],
      onEvent: (_name, status) => upsertJob(status, { prepend: true }),
      onState: (state) => {
        if (state.startsWith("stopped")) notice(state.slice("stopped: ".length));
      },
      // Status events missed while disconnected are not replayed: reload the list instead.
      before: () => loadJobs(),
    });
    list.stream.start();
  }

  // ---- Job view -----------------------------------------------------------------------

  let view = null;

  function newView(jobId) {
    return {
      jobId,
      stream: null,
      docs: new Set(),
      streamed: 0, // documents that arrived by the stream (before `done`)
      pageEvents: 0, // pages the stream reported one by one
      statusPages: 0, // the latest status's count
      warnings: [],
      errors: new Map(),
      ended: false,
    };
  }

  function resetJobView(jobId) {
    $("job-view").dataset.jobId = jobId;
    $("job-id").textContent = jobId;
    setBadge($("job-status"), "");
    $("job-message").textContent = "";
    $("job-progress").removeAttribute("value");
    for (const id of ["job-agent", "job-eta", "stream-state"]) $(id).textContent = "-";
    $("job-pages").textContent = "0";
    $("job-error").textContent = "";
    $("cancel-job").disabled = true;
    $("final").hidden = true;
    for (const id of ["documents", "warnings", "errors"]) $(id).replaceChildren();
  }

  function renderStatus(v, status) {
    if (view !== v || !status) return;
    setBadge($("job-status"), status.status);
    $("job-message").textContent = status.message || "";
    const bar = $("job-progress");
    if (typeof status.progress === "number") bar.value = status.progress;
    else bar.removeAttribute("value");
    $("job-agent").textContent = status.current_agent || "-";
    v.statusPages = Math.max(v.statusPages, status.total_pages_crawled ?? 0);
    renderPages(v);
    $("job-eta").textContent = eta(status);
    $("cancel-job").disabled = !status.is_active;
    // The status carries the full lists; adopt them unless the live events are already ahead.
    if (Array.isArray(status.warnings) && status.warnings.length >= v.warnings.length) {
      v.warnings = status.warnings.slice();
      renderWarnings(v);
    }
    for (const error of status.errors || []) addError(v, error);
    upsertJob(status, { onlyExisting: true });
  }

  // Page events count pages as they come; a status (also the one read before the stream
  // opened, which may be ahead of the events replayed so far) never lowers the count.
  function renderPages(v) {
    $("job-pages").textContent = String(Math.max(v.pageEvents, v.statusPages));
  }

  function documentItem(doc) {
    const href = serverPath(doc.download_url);
    const name = doc.name || doc.url || doc.document_id;
    const title = href
      ? el("a", { class: "doc-name", href, "data-download": "" }, name)
      : el("span", { class: "doc-name" }, name);
    if (href) {
      title.addEventListener("click", (ev) => {
        ev.preventDefault();
        download(href, name);
      });
    }
    const facts = [
      (doc.document_type || "").toUpperCase(),
      typeof doc.file_size_mb === "number" ? megabytes(doc.file_size_mb) : null,
      typeof doc.confidence_score === "number" ? `confidence ${doc.confidence_score.toFixed(2)}` : null,
    ].filter(Boolean);
    return el(
      "li",
      { "data-document-id": doc.document_id },
      title,
      el("span", { class: "doc-facts" }, facts.join(" · ")),
      doc.source_page ? el("span", { class: "doc-source" }, `from ${doc.source_page}`) : null,
    );
  }

  // `source`: "stream" (a live document event) or "results" (filled in at the end from the
  // results endpoint, which the stream should never need); kept on the item as data-source.
  function addDocument(v, doc, source) {
    if (view !== v || !doc || !doc.document_id || v.docs.has(doc.document_id)) return;
    v.docs.add(doc.document_id);
    if (source === "stream") v.streamed += 1;
    const item = documentItem(doc);
    item.dataset.source = source;
    $("documents").append(item);
  }

  function renderWarnings(v) {
    $("warnings").replaceChildren(...v.warnings.map((message) => el("li", {}, message)));
  }

  function addError(v, error) {
    if (!error || v.errors.has(error.error_id)) return;
    v.errors.set(error.error_id, error);
    const where = error.page_url ? ` (${error.page_url})` : "";
    const kind = error.is_recoverable ? "" : " [fatal]";
    $("errors").append(
      el("li", { "data-error-id": error.error_id }, `${error.agent_name}: ${error.error_type}${kind}: ${error.error_message}${where}`),
    );
  }

  function onJobEvent(v, name, data) {
    if (view !== v) return;
    if (name === "status") renderStatus(v, data);
    else if (name === "page") {
      if (!data.skipped) {
        v.pageEvents += 1; // a page robots.txt kept the crawl from is not a page crawled
        renderPages(v);
      }
    } else if (name === "document" && data.decision === "downloaded") addDocument(v, data, "stream");
    else if (name === "warning" && typeof data.message === "string") {
      v.warnings.push(data.message);
      renderWarnings(v);
    } else if (name === "error") addError(v, data);
    else if (name === "done") finish(v, data);
  }

  async function finish(v, status) {
    v.ended = true;
    v.stream.stop("ended");
    renderStatus(v, status);
    for (let attempt = 0; attempt < 5 && view === v; attempt += 1) {
      try {
        showResults(v, status, await apiJson(`scrape/results/${encodeURIComponent(v.jobId)}`));
        return;
      } catch (err) {
        $("job-error").textContent = `results: ${err.message}`;
        if (isFinal(err)) return;
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }

  // The results endpoint is authoritative: anything the stream did not show is added, marked
  // as such; the final line says how many came live.
  function showResults(v, status, results) {
    if (view !== v) return;
    const documents = results.documents || [];
    for (const doc of documents) addDocument(v, doc, "results");
    $("job-error").textContent = "";
    $("final-status").textContent = status.status;
    $("final-count").textContent = String(documents.length);
    $("final-streamed").textContent = String(v.streamed);
    $("final-found").textContent = String(results.total_documents_found ?? 0);
    $("final-pages").textContent = String(results.total_pages_crawled ?? 0);
    $("final").hidden = false;
  }

  function openJob(jobId) {
    if (view && view.jobId === jobId) return;
    closeJob();
    const v = newView(jobId);
    view = v;
    resetJobView(jobId);
    $("submit-view").hidden = true;
    $("jobs-view").hidden = true;
    $("job-view").hidden = false;
    v.stream = new Stream({
      path: `scrape/events/${encodeURIComponent(jobId)}`,
      jobId,
      events: JOB_EVENTS,
      onEvent: (name, data) => onJobEvent(v, name, data),
      onState: (state) => {
        if (view === v) $("stream-state").textContent = state;
      },
      // Also answers "does this job exist for this key?" before any EventSource is opened.
      before: async () => renderStatus(v, await apiJson(`scrape/status/${encodeURIComponent(jobId)}`)),
    });
    v.stream.start();
  }

  function closeJob() {
    if (view && view.stream) view.stream.stop();
    view = null;
  }

  function showList() {
    closeJob();
    $("job-view").hidden = true;
    $("submit-view").hidden = false;
    $("jobs-view").hidden = false;
  }

  function route() {
    const match = /^#job\/(.+)$/.exec(location.hash);
    if (match) openJob(decodeURIComponent(match[1]));
    else showList();
  }

  // The server's stored file name carries the extension; the document's title does not.
  function savedName(resp, fallback) {
    const header = resp.headers.get("Content-Disposition") || "";
    const encoded = /filename\*=UTF-8''([^;]+)/i.exec(header);
    if (encoded) {
      try {
        return decodeURIComponent(encoded[1].trim());
      } catch (err) {
        // Malformed escapes: fall through to the plain name.
      }
    }
    const plain = /filename="([^"]*)"/i.exec(header);
    return plain && plain[1] ? plain[1] : fallback;
  }

  async function download(href, name) {
    try {
      const resp = await api(href);
      if (!resp.ok) throw new ApiError(resp.status, `download failed: HTTP ${resp.status}`);
      const url = URL.createObjectURL(await resp.blob());
      const link = el("a", { href: url, download: savedName(resp, name) });
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      $("job-error").textContent = err.message;
    }
  }

  async function cancelJob() {
    if (!view) return;
    const v = view;
    $("cancel-job").disabled = true;
    try {
      renderStatus(v, await apiJson(`scrape/cancel/${encodeURIComponent(v.jobId)}`, { method: "POST" }));
    } catch (err) {
      if (view === v) $("job-error").textContent = err.message;
    }
  }

  // ---- Submit form --------------------------------------------------------------------

  const NUMBER_FIELDS = ["max_pages", "max_depth", "confidence_threshold", "timeout"];

  function readForm(form) {
    const fields = form.elements;
    const parameters = {};
    for (const name of NUMBER_FIELDS) {
      const raw = fields[name].value.trim();
      if (raw !== "") parameters[name] = Number(raw);
    }
    if (fields.single_page.checked) parameters.single_page = true;
    const types = [...form.querySelectorAll('input[name="document_types"]:checked')].map((box) => box.value);
    if (types.length) parameters.document_types = types;
    return { website: fields.website.value.trim(), prompt: fields.prompt.value.trim(), parameters };
  }

  // "parameters.timeout: must be ..." names the field: mark that input.
  function markField(form, message) {
    for (const node of form.querySelectorAll("[aria-invalid]")) node.removeAttribute("aria-invalid");
    const path = /^([\w.]+):/.exec(message || "");
    if (!path) return;
    const input = form.querySelector(`[name="${path[1].split(".").pop()}"]`);
    if (input) input.setAttribute("aria-invalid", "true");
  }

  async function submitJob(ev) {
    ev.preventDefault();
    const form = ev.currentTarget;
    const button = $("submit-button");
    $("submit-error").textContent = "";
    markField(form, "");
    button.disabled = true;
    try {
      const created = await apiJson("scrape", { method: "POST", body: readForm(form) });
      upsertJob({ ...created, is_active: true }, { prepend: true });
      location.hash = `#job/${encodeURIComponent(created.job_id)}`;
    } catch (err) {
      $("submit-error").textContent = err.message;
      markField(form, err.message);
    } finally {
      button.disabled = false;
    }
  }

  // ---- Start-up -----------------------------------------------------------------------

  // A new key changes which jobs are listed; an open job stream is kept unless it gave up
  // (reconnects read the key afresh anyway).
  function restart() {
    startJobList();
    if (view && view.stream.stopped && !view.ended) {
      const jobId = view.jobId;
      closeJob();
      openJob(jobId);
    }
  }

  function init() {
    const keyInput = $("api-key");
    try {
      keyInput.value = localStorage.getItem(KEY_STORE) || "";
    } catch (err) {
      keyInput.value = "";
    }
    let pending = null;
    keyInput.addEventListener("input", () => {
      try {
        localStorage.setItem(KEY_STORE, apiKey());
      } catch (err) {
        // Private mode: the key still works for this page.
      }
      clearTimeout(pending);
      pending = setTimeout(restart, 400);
    });
    $("submit-form").addEventListener("submit", submitJob);
    $("cancel-job").addEventListener("click", cancelJob);
    $("back").addEventListener("click", () => {
      location.hash = "";
    });
    $("more-jobs").addEventListener("click", () => loadJobs({ more: true }).catch((err) => notice(err.message)));
    window.addEventListener("hashchange", route);
    startJobList();
    route();
  }

  init();
})();
