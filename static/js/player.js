/* Clip player for the reviewer page: frame steps, speeds, event markers, event loop.
 *
 * Times: events carry footage seconds. A clip is cut by stream copy from the keyframe
 * at or before its t_start, so it may begin up to ~1 s before t_start; its end is
 * exact. The clip's real start is therefore t_end - duration, measured once the
 * browser knows the duration (clamped to at most 1.5 s before t_start).
 */
"use strict";

window.ClipPlayer = function ClipPlayer(opts) {
  const video = opts.video;
  const clips = opts.clips;
  const events = opts.events.slice().sort((a, b) => a.t_start - b.t_start);
  const fps = opts.fps || 15;
  const speeds = [0.25, 0.5, 0.75, 1, 1.5, 2, 3, 4];
  const markers = document.getElementById("markers");
  const playhead = document.getElementById("playhead");
  const timeline = document.getElementById("timeline");
  const clock = document.getElementById("clock");
  const playBtn = document.getElementById("play-btn");
  const loopBtn = document.getElementById("loop-btn");
  const speedSel = document.getElementById("speed");
  const onEvent = opts.onEvent || function () {};

  let clipIndex = 0;
  let realStart = clips.length ? clips[0].t_start : 0;
  let current = null; // the event in focus
  let loop = false;
  let pendingSeek = null; // clip time to seek to once metadata is in
  let raf = 0;

  const clip = () => clips[clipIndex];
  const toClip = (t) => t - realStart;
  const toFootage = (ct) => ct + realStart;
  const clamp = (v, lo, hi) => Math.min(hi, Math.max(lo, v));
  const confClass = (c) => (c < 0.6 ? "low" : c < 0.85 ? "mid" : "high");
  const duration = () => (isFinite(video.duration) && video.duration > 0 ? video.duration : clip().t_end - clip().t_start);

  function measureStart() {
    const c = clip();
    if (isFinite(video.duration) && video.duration > 0) {
      realStart = clamp(c.t_end - video.duration, c.t_start - 1.5, c.t_start);
    } else {
      realStart = c.t_start;
    }
  }

  function clipEvents() {
    const c = clip();
    return events.filter((e) => c.events.includes(e.code) || (e.t_start >= c.t_start - 1 && e.t_start <= c.t_end));
  }

  function renderMarkers() {
    if (!markers) return;
    markers.textContent = "";
    const d = duration();
    const width = markers.clientWidth || 600;
    const rowsEnd = []; // right edge (px) of the last pin in each row: overlapping pins stack
    const pins = clipEvents().map((e) => {
      const left = clamp(toClip(e.t_start) / d, 0, 1) * 100;
      const span = Math.max(clamp((e.t_end - e.t_start) / d, 0, 1) * 100, 0.4);
      const bar = document.createElement("div");
      bar.className = "span conf-" + confClass(e.confidence);
      bar.style.left = left + "%";
      bar.style.width = Math.min(span, 100 - left) + "%";
      markers.appendChild(bar);
      const m = document.createElement("button");
      m.type = "button";
      m.tabIndex = -1;
      m.className = "marker conf-" + confClass(e.confidence) + (e.ambiguous ? " ambiguous" : "");
      m.dataset.event = e.code;
      const px = (left / 100) * width;
      let row = rowsEnd.findIndex((end) => end < px - 2);
      if (row < 0) row = rowsEnd.length;
      rowsEnd[row] = px + 22;
      m.style.left = `calc(${left}% - 2px)`;
      m.style.top = row * 22 + "px";
      m.title = `#${e.n} ${e.kind} ${e.qty}× ${e.name} · ${e.t_start.toFixed(1)} s · confidence ${e.confidence.toFixed(2)}${e.ambiguous ? " · ambiguous" : ""}`;
      m.setAttribute("aria-label", m.title);
      m.textContent = e.n;
      m.addEventListener("click", (ev) => {
        ev.stopPropagation();
        seekEvent(e);
      });
      markers.appendChild(m);
      return m;
    });
    if (timeline) timeline.style.height = Math.max(1, rowsEnd.length) * 22 + 16 + "px";
    markCurrent();
    return pins;
  }

  function markCurrent() {
    document.querySelectorAll("[data-event]").forEach((el) => {
      el.classList.toggle("current", !!current && el.dataset.event === current.code);
    });
  }

  function setCurrent(e, why) {
    if (e === current) return;
    current = e;
    markCurrent();
    onEvent(e, why);
  }

  function tick() {
    const ct = video.currentTime || 0;
    const d = duration();
    if (playhead) playhead.style.left = clamp(ct / d, 0, 1) * 100 + "%";
    if (timeline) timeline.setAttribute("aria-valuenow", Math.round((ct / d) * 100));
    const t = toFootage(ct);
    if (clock) clock.textContent = `${t.toFixed(2)} s · frame ${Math.round(t * fps)}`;
    if (loop && current && ct > toClip(current.t_end) + 0.4) {
      video.currentTime = Math.max(0, toClip(current.t_start) - 0.4);
    } else if (!video.paused) {
      // while playing, the event under the playhead is the current one
      const here = clipEvents().find((e) => t >= e.t_start - 0.2 && t <= e.t_end + 0.2);
      if (here) setCurrent(here, "play");
    }
  }

  function loopFrame() {
    tick();
    raf = video.paused ? 0 : requestAnimationFrame(loopFrame);
  }

  function load(index, seekTo) {
    if (index < 0 || index >= clips.length) return;
    clipIndex = index;
    pendingSeek = seekTo == null ? null : seekTo;
    const c = clip();
    if (video.getAttribute("src") !== c.url) {
      video.poster = c.poster || "";
      video.src = c.url;
      video.playbackRate = Number(speedSel ? speedSel.value : 1);
    } else if (seekTo != null && video.readyState >= 1) {
      video.currentTime = clamp(toClip(seekTo), 0, duration());
      pendingSeek = null;
    }
    document.querySelectorAll(".clip-tab").forEach((tab) => {
      tab.setAttribute("aria-selected", String(Number(tab.dataset.clip) === index));
    });
    renderMarkers();
  }

  function seekEvent(e) {
    if (!e) return;
    const inThis = clip() && (clip().events.includes(e.code) || (e.t_start >= clip().t_start - 1 && e.t_start <= clip().t_end));
    const target = e.t_start - 0.5;
    setCurrent(e, "seek");
    if (!inThis) {
      const idx = clips.findIndex((c) => c.events.includes(e.code) || (e.t_start >= c.t_start && e.t_start <= c.t_end));
      if (idx >= 0) return load(idx, target);
    }
    if (video.readyState < 1) {
      pendingSeek = target; // the clip's real start is known once its metadata is in
      return;
    }
    video.currentTime = clamp(toClip(target), 0, duration());
    tick();
  }

  function stepEvent(dir) {
    if (!events.length) return;
    let idx;
    if (current) {
      idx = events.indexOf(current) + dir;
    } else {
      const t = toFootage(video.currentTime || 0);
      idx = dir > 0 ? events.findIndex((e) => e.t_start > t) : events.length - 1;
    }
    seekEvent(events[clamp(idx < 0 && dir > 0 ? events.length - 1 : idx, 0, events.length - 1)]);
  }

  function togglePlay() {
    if (video.paused) {
      const p = video.play();
      if (p && p.catch) p.catch(() => {});
    } else {
      video.pause();
    }
  }

  function step(frames) {
    video.pause();
    video.currentTime = clamp((video.currentTime || 0) + frames / fps, 0, duration());
    tick();
  }

  function setSpeed(v) {
    video.playbackRate = v;
    if (speedSel) speedSel.value = String(v);
  }

  function faster(dir) {
    const i = speeds.indexOf(Number(speedSel ? speedSel.value : video.playbackRate));
    setSpeed(speeds[clamp((i < 0 ? 3 : i) + dir, 0, speeds.length - 1)]);
  }

  function toggleLoop() {
    loop = !loop;
    if (loopBtn) loopBtn.setAttribute("aria-pressed", String(loop));
    if (loop && !current) stepEvent(1);
    else if (loop && current) seekEvent(current);
  }

  function seekBy(seconds) {
    video.currentTime = clamp((video.currentTime || 0) + seconds, 0, duration());
    tick();
  }

  video.addEventListener("loadedmetadata", () => {
    measureStart();
    renderMarkers();
    if (pendingSeek != null) {
      video.currentTime = clamp(toClip(pendingSeek), 0, duration());
      pendingSeek = null;
    }
    tick();
  });
  video.addEventListener("play", () => {
    if (playBtn) playBtn.innerHTML = "❚❚ Pause <kbd>Space</kbd>";
    if (!raf) raf = requestAnimationFrame(loopFrame);
  });
  video.addEventListener("pause", () => {
    if (playBtn) playBtn.innerHTML = "▶ Play <kbd>Space</kbd>";
    tick();
  });
  video.addEventListener("seeked", tick);
  video.addEventListener("timeupdate", tick);
  video.addEventListener("ended", () => {
    if (loop && current) {
      video.currentTime = Math.max(0, toClip(current.t_start) - 0.4);
      video.play().catch(() => {});
    }
  });
  video.addEventListener("click", togglePlay);

  if (timeline) {
    timeline.addEventListener("click", (ev) => {
      const r = timeline.getBoundingClientRect();
      video.currentTime = clamp((ev.clientX - r.left) / r.width, 0, 1) * duration();
      tick();
    });
    timeline.addEventListener("keydown", (ev) => {
      if (ev.key === "ArrowLeft" || ev.key === "ArrowRight") {
        ev.preventDefault();
        const dir = ev.key === "ArrowLeft" ? -1 : 1;
        if (ev.shiftKey) step(dir);
        else seekBy(dir);
      }
    });
  }
  if (speedSel) speedSel.addEventListener("change", () => setSpeed(Number(speedSel.value)));
  document.querySelectorAll(".controls [data-act]").forEach((btn) => {
    btn.addEventListener("click", () => {
      ({
        "prev-event": () => stepEvent(-1),
        "next-event": () => stepEvent(1),
        "frame-back": () => step(-1),
        "frame-fwd": () => step(1),
        play: togglePlay,
        loop: toggleLoop,
      })[btn.dataset.act]();
    });
  });
  document.querySelectorAll(".clip-tab").forEach((tab) => {
    tab.addEventListener("click", () => load(Number(tab.dataset.clip)));
  });
  document.querySelectorAll("#events [data-event]").forEach((btn) => {
    btn.addEventListener("click", () => seekEvent(events.find((e) => e.code === btn.dataset.event)));
  });

  if (video.readyState >= 1) {
    measureStart();
    tick();
  }
  renderMarkers();

  return {
    togglePlay,
    step,
    faster,
    toggleLoop,
    seekBy,
    prevEvent: () => stepEvent(-1),
    nextEvent: () => stepEvent(1),
    prevClip: () => load(clipIndex - 1),
    nextClip: () => load(clipIndex + 1),
    seekEvent,
    current: () => current,
    events: () => events,
    state: () => ({
      clip: clipIndex,
      time: video.currentTime,
      footageTime: toFootage(video.currentTime || 0),
      realStart,
      speed: video.playbackRate,
      loop,
      event: current ? current.code : null,
    }),
  };
};
