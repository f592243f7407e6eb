// The listener app: every answer comes from the /v1 API with the listener's key.
"use strict";

(() => {
  const { api, el, notice, confirm, download } = segue;
  const $ = (id) => document.getElementById(id);
  const STORE = "segue.listener";
  /** Simulated playback: a track of this many ms plays in TRACK_MS / SPEED real ms. */
  const SPEED = 15;
  const TICK_MS = 200;

  let session = JSON.parse(sessionStorage.getItem(STORE) || "null"); // {user, key}
  let profile = null; // the API's UserOut, or null for a listener not signed up
  let auth = false;
  const picks = new Map(); // onboarding: item id -> title

  const call = (path, options = {}) => api(path, { key: session && session.key, ...options });
  const userPath = (rest = "") => `/v1/users/${encodeURIComponent(session.user)}${rest}`;

  /** "Title — Artist" as the API writes display titles. */
  function split(title, artist) {
    if (artist) return { title, artist };
    const at = title.lastIndexOf(" — ");
    return at < 0 ? { title, artist: "" } : { title: title.slice(0, at), artist: title.slice(at + 3) };
  }

  function track(item_id, title, artist, reason) {
    return { item_id, reason, ...split(title, artist) };
  }

  // -- views -----------------------------------------------------------------------------
  function show(view) {
    document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== `view-${view}`; });
    document.querySelectorAll("#nav button").forEach((b) => {
      if (b.dataset.view === view) b.setAttribute("aria-current", "page");
      else b.removeAttribute("aria-current");
    });
    const signedIn = view !== "signin";
    $("nav").hidden = !signedIn;
    $("who").hidden = !signedIn;
    $("player").hidden = !signedIn;
    if (view === "home") loadHome();
    if (view === "settings") loadSettings();
    if (view !== "sing") sing.pause();
    if (view === "wrapped" && !$("wrapped-year").value) $("wrapped-year").value = new Date().getFullYear() - 1;
  }

  function rowItem(t, { onPlay, label = "Play" } = {}) {
    return el("li", { dataset: { itemId: t.item_id, artist: t.artist || "" } },
      el("div", { class: "meta" },
        el("strong", {}, t.title),
        t.artist ? el("span", { class: "artist" }, t.artist) : null,
        t.reason ? el("span", { class: "reason" }, t.reason) : null),
      onPlay ? el("button", { type: "button", onclick: onPlay, "aria-label": `${label} ${t.title}` }, label) : null);
  }

  function fill(list, tracks, source) {
    list.replaceChildren(...tracks.map((t, i) => rowItem(t, { onPlay: () => player.start(tracks, i, source) })));
  }

  // -- sign in and onboarding --------------------------------------------------------------
  async function signIn(user, key) {
    session = { user, key: key || null };
    sessionStorage.setItem(STORE, JSON.stringify(session));
    $("who-name").textContent = `Listening as ${user}`;
    profile = null;
    badges();
    // the profile (for the badges and settings) loads alongside Home's rows, not before them
    const loading = call(userPath()).then((found) => {
      profile = found;
      badges();
    }, (e) => {
      if (e.status === 401 || e.status === 403) {
        session = null;
        sessionStorage.removeItem(STORE);
        notice(`That token was not accepted: ${e.message}`);
        show("signin");
        return;
      }
      notice(`${user} is not signed up yet: Home starts from what is popular.`);
    });
    notice("");
    show("home");
    await loading;
  }

  function badges() {
    $("focus-badge").hidden = !(profile && profile.focus_mode);
    $("kids-badge").hidden = !(profile && profile.kids_profile);
  }

  async function findPicks() {
    const q = $("onboard-q").value.trim();
    if (!q) return;
    const key = $("onboard-key").value || null;
    try {
      const found = await api("/v1/search", { key, params: { q, kind: ["track", "artist"], limit: 8 } });
      $("onboard-results").replaceChildren(...found.items.map((hit) => {
        const label = hit.by ? `${hit.title} — ${hit.by}` : hit.title;
        return el("li", { dataset: { itemId: hit.item_id } },
          el("span", {}, label, el("span", { class: "muted" }, ` (${hit.kind})`)),
          el("button", { type: "button", "aria-label": `Pick ${label}`,
            onclick: () => { addPick(hit.item_id, label); } }, "Pick"));
      }));
      if (!found.items.length) notice(`Nothing matches “${q}”.`);
    } catch (e) {
      notice(`Search failed: ${e.message}`);
    }
  }

  function addPick(id, label) {
    if (picks.size >= 3 || picks.has(id)) return;
    picks.set(id, label);
    renderPicks();
  }

  function renderPicks() {
    $("onboard-picks").replaceChildren(...[...picks].map(([id, label]) =>
      el("li", { dataset: { itemId: id } }, el("span", {}, label),
        el("button", { type: "button", "aria-label": `Remove ${label}`,
          onclick: () => { picks.delete(id); renderPicks(); } }, "Remove"))));
    $("pick-count").textContent = picks.size;
    $("onboard-start").disabled = picks.size < 3;
  }

  async function onboard(event) {
    event.preventDefault();
    const user = $("onboard-user").value.trim();
    const key = $("onboard-key").value || null;
    try {
      await api("/v1/users", { method: "POST", key, body: { id: user, picks: [...picks.keys()] } });
    } catch (e) {
      notice(`Could not sign up ${user}: ${e.message}`);
      return;
    }
    picks.clear();
    renderPicks();
    await signIn(user, key);
  }

  // -- Home ---------------------------------------------------------------------------------
  let lastRecs = null;

  async function loadRecs() {
    const answer = await call(userPath("/recommendations"), { params: { k: 10, explain: true } });
    lastRecs = answer;
    const tracks = answer.items.map((i) => track(i.item_id, i.title, null, i.reason));
    fill($("recs"), tracks, "home");
    $("recs-meta").textContent = `${answer.model} ${answer.version}`;
    $("recs").dataset.version = answer.version;
    $("recs").dataset.loads = String(Number($("recs").dataset.loads || 0) + 1);
    if (!tracks.length && answer.why_empty) $("recs").append(el("li", {}, answer.why_empty));
    return tracks;
  }

  async function loadHome() {
    const jobs = [
      loadRecs().catch((e) => { $("recs").replaceChildren(el("li", {}, e.message)); }),
      call(userPath("/mixes")).then((mixes) => {
        $("mixes").replaceChildren(...(mixes.length ? mixes.map((mix) => {
          const tracks = mix.tracks.map((t) => track(t.item_id, t.title, t.artist));
          return el("article", { class: "card" },
            el("h3", {}, mix.title), el("p", { class: "muted" }, mix.description),
            el("button", { type: "button", onclick: () => player.start(tracks, 0, "mix"),
              "aria-label": `Play ${mix.title}` }, `Play ${tracks.length} tracks`));
        }) : [el("p", { class: "muted" }, "Your mixes appear after a few plays.")]));
      }).catch((e) => { $("mixes").replaceChildren(el("p", { class: "muted" }, e.message)); }),
      call(userPath("/new-releases"), { params: { k: 6 } }).then((answer) => {
        const tracks = answer.items.map((i) => track(i.item_id, i.title, i.artist, `${i.reason} · ${i.release_date}`));
        fill($("releases"), tracks, "new_releases");
        $("releases-meta").textContent = `out in the ${answer.window_days} days to ${answer.as_of}`;
        if (!tracks.length) $("releases").append(el("li", {}, "Nothing new lately."));
      }).catch((e) => { $("releases").replaceChildren(el("li", {}, e.message)); }),
      call(userPath("/station"), { params: { seed: "discovery", k: 8 } }).then((page) => {
        const tracks = page.tracks.map((t) => track(t.item_id, t.title, t.artist, t.genre));
        fill($("discovery"), tracks, "discovery");
        $("discovery-play").onclick = () => player.start(tracks, 0, "discovery");
      }).catch((e) => { $("discovery").replaceChildren(el("li", {}, e.message)); }),
    ];
    await Promise.all(jobs);
    document.body.dataset.homeLoaded = String(Date.now());
    // below the fold: podcasts and audiobooks, asked for once the rows above are drawn
    await call(userPath("/recommendations"), { params: { k: 5, kinds: ["podcast_episode", "audiobook"] } })
      .then((answer) => {
        const tracks = answer.items.map((i) => track(i.item_id, i.title, null, i.reason));
        $("more-kinds").replaceChildren(...(tracks.length ? [
          el("h2", { id: "spoken-title" }, "Podcasts and audiobooks"),
          (() => { const ol = el("ol", { class: "list", "aria-labelledby": "spoken-title" }); fill(ol, tracks, "spoken"); return ol; })(),
        ] : []));
      }).catch(() => $("more-kinds").replaceChildren());
  }

  // -- the player -----------------------------------------------------------------------------
  const player = (() => {
    let queue = [];
    let current = null;
    let source = null;
    let elapsed = 0;
    let timer = null;
    const skips = new Map(); // artist -> skips this session

    function render() {
      $("now-title").textContent = current ? current.title : "Nothing yet";
      $("now-artist").textContent = current && current.artist ? `by ${current.artist}` : "";
      $("now-progress").value = current ? Math.round(1000 * elapsed / duration()) : 0;
      $("p-toggle").textContent = timer ? "Pause" : "Play";
      $("p-toggle").setAttribute("aria-pressed", String(Boolean(timer)));
      $("p-like").setAttribute("aria-pressed", "false");
      $("queue").replaceChildren(...queue.map((t) => rowItem(t)));
      $("queue-count").textContent = queue.length;
      $("player").dataset.itemId = current ? current.item_id : "";
    }

    const duration = () => 180000;

    function start(tracks, index, from) {
      source = from;
      queue = tracks.slice(index + 1);
      play(tracks[index]);
    }

    function play(t) {
      stop();
      current = t || null;
      elapsed = 0;
      if (current) timer = setInterval(tick, TICK_MS);
      render();
    }

    function stop() {
      if (timer) clearInterval(timer);
      timer = null;
    }

    function tick() {
      elapsed += TICK_MS * SPEED;
      if (elapsed >= duration()) { finish("play", duration()); return; }
      $("now-progress").value = Math.round(1000 * elapsed / duration());
    }

    async function send(type, item, ms) {
      const event = { user_id: session.user, item_id: item.item_id, type, surface: source || "home" };
      if (ms !== undefined) event.ms_played = Math.round(ms);
      if (lastRecs && lastRecs.request_id && source === "home") event.session_id = lastRecs.request_id;
      try {
        const answer = await call("/v1/events", { method: "POST", body: { events: [event] } });
        return answer;
      } catch (e) {
        notice(`Could not send ${type}: ${e.message}`);
        return null;
      }
    }

    /** The track ends (played through, skipped, disliked): tell the API, refresh, go on. */
    async function finish(type, ms) {
      const done = current;
      if (!done) return;
      stop();
      await send(type, done, ms);
      if (type === "skip" || type === "dislike") {
        const n = (skips.get(done.artist) || 0) + 1;
        skips.set(done.artist, n);
        if (n >= 2 && done.artist) notice(`You skipped ${done.artist} twice: less of them from now on.`);
      }
      await refresh();
      play(queue.shift());
    }

    /** Home's list again, shaped by what just happened; the queue follows it. */
    async function refresh() {
      if ($("view-home").hidden && source !== "home") return;
      try {
        const tracks = await loadRecs();
        if (source === "home") queue = tracks.filter((t) => !current || t.item_id !== current.item_id);
      } catch (e) { /* the row keeps what it showed */ }
    }

    $("p-toggle").addEventListener("click", () => {
      if (timer) stop();
      else if (current) timer = setInterval(tick, TICK_MS);
      else if (queue.length) play(queue.shift());
      render();
    });
    $("p-next").addEventListener("click", () => finish("play", elapsed));
    $("p-skip").addEventListener("click", () => finish("skip", elapsed));
    $("p-dislike").addEventListener("click", () => finish("dislike", elapsed));
    $("p-sing").addEventListener("click", () => {
      if (!current) { notice("Play a track first, then sing along."); return; }
      const t = current;
      stop();
      render();
      show("sing");
      if (!sing.current() || sing.current().item_id !== t.item_id) sing.open(t);
    });
    $("p-like").addEventListener("click", async () => {
      if (!current) return;
      await send("like", current);
      $("p-like").setAttribute("aria-pressed", "true");
      await refresh();
    });
    return { start, stop, queue: (tracks, from) => { source = from; queue = tracks.slice(); if (!current) play(queue.shift()); else render(); } };
  })();

  // -- Sing: synced lyrics and the lead vocal's level -------------------------------------------------
  // The words follow the track's audio when it has a file, else a clock at real time. The level
  // slider acts at once through WebAudio (a mid/side gain: the centre, where a lead sits, scaled)
  // and asks the server for its better render (/audio?vocals=), which replaces the live one.
  const sing = (() => {
    let track = null;
    let lines = [];
    let audio = null; // an <audio> element when the track has a file
    let original = null; // the object URL of the file as recorded
    let graph = null; // {context, a: [GainNode, GainNode], b: [GainNode, GainNode]}
    let offset = 0; // ms, for the clock
    let started = null; // performance.now() when the clock started, or null when paused
    let timer = null;
    let wanted = 1; // the level the listener chose
    let renderAsked = 0;
    const enc = encodeURIComponent;

    const now = () => (audio ? audio.currentTime * 1000 : offset + (started === null ? 0 : performance.now() - started));
    const clock = (ms) => `${Math.floor(ms / 60000)}:${String(Math.floor(ms / 1000) % 60).padStart(2, "0")}`;

    async function open(t) {
      pause();
      track = t;
      offset = 0;
      lines = [];
      $("sing-lines").replaceChildren();
      $("sing-track").textContent = t.artist ? `${t.title} — ${t.artist}` : t.title;
      $("sing-controls").hidden = false;
      $("sing-vocals").value = "1";
      wanted = 1;
      label();
      try {
        lines = (await call(`/v1/items/${enc(t.item_id)}/lyrics`)).lines;
      } catch (e) {
        $("sing-lines").replaceChildren(el("li", {}, e.message));
      }
      $("sing-lines").replaceChildren(...lines.map((line) => el("li",
        { class: line.singer === "bg" ? "bg" : "", dataset: { index: line.index, start: line.start_ms, end: line.end_ms } },
        ...line.words.map((w) => [el("span", { class: w.singer === "bg" ? "bg" : null, dataset: { start: w.start_ms, end: w.end_ms } }, w.text),
          w.joined ? "" : " "]))));
      const end = lines.length ? lines[lines.length - 1].end_ms + 2000 : 1000;
      $("sing-at").max = String(end);
      await loadAudio();
      draw();
    }

    async function loadAudio() {
      if (audio) { audio.pause(); audio = null; }
      if (original) { URL.revokeObjectURL(original); original = null; }
      graph = null;
      try {
        const response = await call(`/v1/items/${enc(track.item_id)}/audio`, { raw: true });
        original = URL.createObjectURL(await response.blob());
      } catch (e) {
        $("sing-audio-note").textContent = e.status === 404
          ? "This track has no audio file here: the words follow a clock, and the vocal level applies when one is imported."
          : `No audio: ${e.message}`;
        $("sing-controls").dataset.source = "clock";
        return;
      }
      audio = new Audio(original);
      audio.addEventListener("loadedmetadata", () => { $("sing-at").max = String(Math.round(audio.duration * 1000)); });
      audio.addEventListener("ended", () => { pause(); });
      $("sing-audio-note").textContent = "Playing the track's audio.";
      $("sing-controls").dataset.source = "original";
    }

    /** The live level: L' = (g+1)/2 L + (g-1)/2 R and R' alike, i.e. mid scaled by g. */
    function live(g) {
      $("sing-vocals").dataset.live = String(g);
      if (!graph) return;
      const a = (g + 1) / 2;
      const b = (g - 1) / 2;
      graph.a.forEach((n) => { n.gain.value = a; });
      graph.b.forEach((n) => { n.gain.value = b; });
    }

    function wire() {
      if (graph || !audio || !window.AudioContext) return;
      const context = new AudioContext();
      const source = context.createMediaElementSource(audio);
      const split = context.createChannelSplitter(2);
      const merge = context.createChannelMerger(2);
      const gain = () => context.createGain();
      graph = { context, a: [gain(), gain()], b: [gain(), gain()] };
      source.connect(split);
      split.connect(graph.a[0], 0).connect(merge, 0, 0); // L -> L'
      split.connect(graph.b[0], 1).connect(merge, 0, 0); // R -> L'
      split.connect(graph.b[1], 0).connect(merge, 0, 1); // L -> R'
      split.connect(graph.a[1], 1).connect(merge, 0, 1); // R -> R'
      merge.connect(context.destination);
      live($("sing-controls").dataset.source === "original" ? wanted : 1);
    }

    /** The server's render for the chosen level; the live gain stands in until it arrives. */
    async function render(level) {
      const asked = ++renderAsked;
      if (!audio) return;
      $("sing-audio-note").textContent = `Rendering the lead at ${Math.round(level * 100)} %…`;
      let url;
      try {
        const response = await call(`/v1/items/${enc(track.item_id)}/audio`, { raw: true, params: { vocals: level } });
        url = URL.createObjectURL(await response.blob());
      } catch (e) {
        $("sing-audio-note").textContent = `The live level stays: ${e.message}`;
        return;
      }
      if (asked !== renderAsked || !audio) { URL.revokeObjectURL(url); return; }
      swap(url, `render:${level}`);
      live(1);
      $("sing-audio-note").textContent = `The server's render at ${Math.round(level * 100)} %.`;
    }

    function swap(url, source) {
      const at = audio.currentTime;
      const playing = !audio.paused;
      const old = audio.src;
      audio.src = url;
      audio.currentTime = at;
      if (playing) audio.play().catch(() => {});
      if (old !== original && old.startsWith("blob:")) URL.revokeObjectURL(old);
      $("sing-controls").dataset.source = source;
    }

    let debounce = null;
    function level() {
      wanted = Number($("sing-vocals").value);
      label();
      if (audio && $("sing-controls").dataset.source !== "original") swap(original, "original");
      live(wanted);
      clearTimeout(debounce);
      if (audio && wanted !== 1) debounce = setTimeout(() => render(wanted), 400);
    }

    const label = () => { $("sing-vocals-out").textContent = `${Math.round(Number($("sing-vocals").value) * 100)} %`; };

    function play() {
      if (!track) return;
      player.stop();
      if (audio) { wire(); audio.play().catch((e) => { $("sing-audio-note").textContent = `Cannot play: ${e.message}`; }); }
      else started = performance.now();
      if (!timer) timer = setInterval(draw, 100);
      $("sing-play").textContent = "Pause";
      $("sing-play").setAttribute("aria-pressed", "true");
    }

    function pause() {
      if (audio) audio.pause();
      else if (started !== null) { offset = now(); started = null; }
      if (timer) clearInterval(timer);
      timer = null;
      $("sing-play").textContent = "Play";
      $("sing-play").setAttribute("aria-pressed", "false");
    }

    function seek() {
      const ms = Number($("sing-at").value);
      if (audio) audio.currentTime = ms / 1000;
      else { offset = ms; if (started !== null) started = performance.now(); }
      draw();
    }

    /** Highlight the line and word being sung at the current moment. */
    function draw() {
      const t = now();
      $("sing-clock").textContent = clock(t);
      if (document.activeElement !== $("sing-at")) $("sing-at").value = String(Math.round(t));
      let current = null;
      for (const li of $("sing-lines").children) {
        const on = Number(li.dataset.start) <= t && t < Number(li.dataset.end);
        if (on) { li.setAttribute("aria-current", "true"); current = li; } else li.removeAttribute("aria-current");
        for (const w of li.querySelectorAll("span")) {
          w.classList.toggle("sung", on && Number(w.dataset.start) <= t);
          w.classList.toggle("singing", on && Number(w.dataset.start) <= t && t < Number(w.dataset.end));
        }
      }
      $("sing-lines").dataset.line = current ? current.dataset.index : "";
      if (current && timer) current.scrollIntoView({ block: "nearest" });
    }

    $("sing-play").addEventListener("click", () => (timer ? pause() : play()));
    $("sing-at").addEventListener("input", seek);
    $("sing-vocals").addEventListener("input", level);
    return { open, pause, current: () => track };
  })();

  // -- search and requests in words --------------------------------------------------------------
  async function search(event) {
    event.preventDefault();
    const q = $("search-q").value.trim();
    if (!q) return;
    try {
      const found = await call("/v1/search", { params: { q, limit: 20 } });
      const tracks = found.items.map((h) => ({ ...track(h.item_id, h.title, h.by), reason: h.kind }));
      fill($("search-results"), tracks, "search");
      if (!tracks.length) $("search-results").append(el("li", {}, `Nothing matches “${q}”.`));
    } catch (e) {
      notice(`Search failed: ${e.message}`);
    }
  }

  /** A request in words; ``confirmed``: the listener said yes to "shall I go ahead?", and the
   * API builds the queue only then. */
  async function ask(text, confirmed = false) {
    const box = $("ask-answer");
    box.replaceChildren(el("p", { class: "muted" }, "Thinking…"));
    let answer;
    try {
      answer = await call("/v1/query", { method: "POST", body: { text, user_id: profile ? session.user : null, confirmed } });
    } catch (e) {
      box.replaceChildren(e.status === 422
        ? el("p", { class: "warn", id: "ask-refused" }, `I could not do that: ${e.message}`)
        : el("p", { class: "warn", role: "alert" }, `Cannot answer requests in words here: ${e.message}`));
      return;
    }
    box.replaceChildren(
      el("p", {}, `Understood: ${answer.intent} (confidence ${(answer.confidence * 100).toFixed(0)} %)`),
      el("h3", {}, "The call"),
      el("pre", { id: "ask-call" }, JSON.stringify(answer.call, null, 2)),
      answer.message ? el("p", {}, answer.message) : null);
    if (answer.question) {
      // confirm: "Did you mean …? Shall I go ahead?" — yes plays the queue; clarify: the
      // listener answers in words, or picks one of the names it could mean
      pending = { ...answer, text };
      const confirming = answer.question_kind === "confirm";
      $("ask-question").textContent = answer.question;
      $("ask-reply-box").hidden = confirming;
      $("ask-ok").textContent = confirming ? "Yes, go ahead" : "Answer";
      $("ask-choices").replaceChildren(...(confirming ? [] : answer.entities.flatMap((e) =>
        e.candidates.slice(0, 3).map((c) => el("li", {}, el("span", {}, `${c.title} (${c.kind})`),
          el("button", { type: "button", onclick: () => { $("ask-reply").value = `play ${c.title}`; $("ask-reply").focus(); } },
            `Use ${c.title}`))))));
      $("ask-reply").value = "";
      $("ask-dialog").showModal();
      return;
    }
    playQueue(answer);
  }

  let pending = null; // the answer a question in the dialog is about

  function playQueue(answer) {
    if (!answer.queue || !answer.queue.length) return;
    const tracks = answer.queue.map((q) => track(q.item_id, q.title, null, q.reason));
    const ol = el("ol", { class: "list", id: "ask-queue", "aria-label": "Queue" });
    fill(ol, tracks, "request");
    $("ask-answer").append(el("h3", {}, "Queue"), ol);
    player.start(tracks, 0, "request");
  }

  // -- stations --------------------------------------------------------------------------------------
  async function station(event) {
    event.preventDefault();
    const seed = `${$("station-kind").value}:${$("station-value").value.trim()}`;
    try {
      const page = await call(userPath("/station"), { params: { seed, k: 15 } });
      const tracks = page.tracks.map((t) => track(t.item_id, t.title, t.artist, t.genre));
      $("station-title").textContent = page.seed_title ? `Radio from ${page.seed_title}` : `Radio: ${seed}`;
      fill($("station-tracks"), tracks, "radio");
      if (!tracks.length && page.why_empty) $("station-tracks").append(el("li", {}, page.why_empty));
      else player.start(tracks, 0, "radio");
    } catch (e) {
      const suggestions = (e.body && e.body.suggestions) || [];
      $("station-title").textContent = e.message;
      $("station-tracks").replaceChildren(...suggestions.map((s) =>
        el("li", {}, el("span", {}, s.by ? `${s.title} — ${s.by}` : s.title),
          el("button", { type: "button", onclick: () => { $("station-value").value = s.id; } }, "Use this"))));
    }
  }

  // -- Wrapped -------------------------------------------------------------------------------------
  async function wrapped(event) {
    event.preventDefault();
    const year = $("wrapped-year").value;
    const body = $("wrapped-body");
    try {
      const w = await call(userPath(`/wrapped/${year}`));
      const card = await call(userPath(`/wrapped/${year}/card.png`), { raw: true }).then((r) => r.blob());
      const url = URL.createObjectURL(card);
      const name = `wrapped-${session.user}-${year}.png`;
      body.replaceChildren(
        el("p", {}, `${Math.round(w.minutes_listened).toLocaleString()} minutes of music in ${year}.`),
        el("img", { src: url, alt: `Wrapped ${year} card for ${session.user}`, class: "wrapped-card", width: "540" }),
        el("p", {}, el("button", { type: "button", class: "primary", onclick: () => download(card, name) }, "Download the card")));
    } catch (e) {
      body.replaceChildren(el("p", {}, e.message));
    }
  }

  // -- settings and my data ---------------------------------------------------------------------
  const FLAGS = { focus_mode: "set-focus", kids_profile: "set-kids", consent_personalisation: "set-personal",
    consent_email: "set-email", consent_push: "set-push" };

  async function loadSettings() {
    try {
      profile = await call(userPath());
    } catch (e) {
      $("settings-status").textContent = e.status === 404 ? "Sign up first (pick three on the start page) to keep settings." : e.message;
      return;
    }
    for (const [flag, id] of Object.entries(FLAGS)) $(id).checked = Boolean(profile[flag]);
    $("settings-status").textContent = "";
  }

  async function changeSetting(event) {
    const input = event.target;
    try {
      profile = await call(userPath("/settings"), { method: "PATCH", body: { [input.name]: input.checked } });
      $("settings-status").textContent = "Saved.";
      badges();
    } catch (e) {
      input.checked = !input.checked;
      $("settings-status").textContent = `Not saved: ${e.message}`;
    }
  }

  async function exportData() {
    try {
      const response = await call(userPath("/export"), { raw: true });
      download(await response.blob(), `segue-${session.user}.json`);
      $("data-status").textContent = "Your data is downloading.";
    } catch (e) {
      $("data-status").textContent = `Cannot export: ${e.message}`;
    }
  }

  async function deleteData() {
    const ok = await confirm("Delete my data?", `Everything segue holds about ${session.user} is erased, for good.`, "Delete");
    if (!ok) return;
    try {
      await call(userPath(), { method: "DELETE" });
      $("data-status").textContent = "Erased.";
      signOut();
      notice("Your data was erased.");
    } catch (e) {
      $("data-status").textContent = `Cannot delete: ${e.message}`;
    }
  }

  function signOut() {
    player.stop();
    sessionStorage.removeItem(STORE);
    session = null;
    profile = null;
    notice("");
    show("signin");
  }

  // -- wiring --------------------------------------------------------------------------------------
  document.querySelectorAll("#nav button").forEach((b) => b.addEventListener("click", () => show(b.dataset.view)));
  $("signin-form").addEventListener("submit", (e) => {
    e.preventDefault();
    signIn($("signin-user").value.trim(), $("signin-key").value);
  });
  $("onboard-form").addEventListener("submit", onboard);
  $("onboard-find").addEventListener("click", findPicks);
  $("onboard-q").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); findPicks(); } });
  $("sign-out").addEventListener("click", signOut);
  $("search-form").addEventListener("submit", search);
  $("ask-form").addEventListener("submit", (e) => { e.preventDefault(); const t = $("ask-text").value.trim(); if (t) ask(t); });
  $("ask-dialog").addEventListener("close", () => {
    if ($("ask-dialog").returnValue !== "ok" || !pending) return;
    if (pending.question_kind === "confirm") { ask(pending.text, true); return; }
    const reply = $("ask-reply").value.trim();
    if (reply) { $("ask-text").value = reply; ask(reply); }
  });
  $("station-form").addEventListener("submit", station);
  $("wrapped-form").addEventListener("submit", wrapped);
  Object.values(FLAGS).forEach((id) => $(id).addEventListener("change", changeSetting));
  $("export-data").addEventListener("click", exportData);
  $("delete-data").addEventListener("click", deleteData);
  $("onboard-user").value = `listener-${Math.random().toString(36).slice(2, 8)}`;

  // a listener chosen earlier in this tab goes straight to Home; readiness only says
  // whether keys are asked for, so it is fetched alongside
  if (session) signIn(session.user, session.key);
  api("/v1/ready").catch((e) => e.body || {}).then((ready) => {
    auth = Boolean(ready && ready.auth);
    document.querySelectorAll(".keyfield").forEach((f) => { f.hidden = !auth; });
    if (!session) show("signin");
    document.body.dataset.ready = "1";
  });
})();
