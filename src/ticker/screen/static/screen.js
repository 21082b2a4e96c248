// ticker's big screen: draws one run from the server's Server-Sent Events.
//
// Every string that comes from the broker is put on the page with textContent (or as an
// attribute value), never as HTML, so a brand named "<img src=x onerror=alert(1)>" shows as those
// characters. Each event is handled inside try/catch: a payload the page cannot use is counted
// (see the diagnostics corner) and the page goes on. window.tickerScreen exposes the page's
// state read-only for tests and the curious (e.g. when each milestone was shown).
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);

  const S = {
    run: null,             // the run shown
    follow: true,          // follow the newest run (no ?run= in the address)
    status: null,
    tick: null,
    board: [],
    milestones: new Map(), // id -> milestone
    rates: [],             // recent {t, v}: orders/s at full-festival scale
    peak: null,            // {v, at}
    server: 'connecting',  // the SSE stream: connecting | connected | reconnecting
    mqtt: 'connecting',    // the server's broker link
    mqttDetail: '',
    broker: '',
    diagnostics: { malformed: {}, ignored: 0 },
    pageErrors: 0,
    opens: 0,
    snapshots: 0,
    shownAt: {},           // milestone id -> epoch ms when it was first painted
    linkHistory: [],       // every connection state the page went through, in order
    live: false,           // false while a snapshot is being drawn (no banners for the past)
    banners: [],           // the headlines announced by the banner, in order
    maxBrandThreshold: 0,
  };
  window.tickerScreen = S;

  // --- formatting ----------------------------------------------------------------------------

  const CURRENCIES = {
    CNY: { symbol: '¥', locale: 'zh-CN', digits: 2 },
    USD: { symbol: 'US$', locale: 'en-US', digits: 2 },
    EUR: { symbol: '€', locale: 'de-DE', digits: 2 },
  };
  const currency = () => {
    const code = S.status && typeof S.status.currency === 'string' ? S.status.currency : 'CNY';
    return CURRENCIES[code] || { symbol: code + ' ', locale: 'en-US', digits: 2 };
  };
  const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const fmtInt = (n) => intFmt.format(Math.round(n));

  // Exact money from integer minor units: the major part grouped in the festival's locale, the
  // minor digits after it ("¥540,320,123,456.78").
  function moneyParts(minor) {
    const c = currency();
    const per = 10n ** BigInt(c.digits);
    let m = BigInt(minor);
    const sign = m < 0n ? '−' : '';
    if (m < 0n) m = -m;
    const major = new Intl.NumberFormat(c.locale, { maximumFractionDigits: 0 }).format(m / per);
    const frac = c.digits ? '.' + String(m % per).padStart(c.digits, '0') : '';
    return [sign + c.symbol + major, frac];
  }

  const ISO = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?([+-]\d\d:\d\d|Z)$/;
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
  // Event time as written in the festival's own zone (the offset the publisher gave), never
  // converted to the browser's zone.
  function eventTime(text) {
    const m = typeof text === 'string' ? ISO.exec(text) : null;
    if (!m) return null;
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const weekday = DAYS[new Date(Date.UTC(y, mo - 1, d)).getUTCDay()];
    return {
      date: `${weekday} ${d} ${MONTHS[mo - 1]} ${y}`,
      short: `${MONTHS[mo - 1]} ${d} ${m[4]}:${m[5]}:${m[6]}`,
      time: `${m[4]}:${m[5]}:${m[6]}`,
      zone: m[8] === 'Z' ? 'UTC' : `UTC${m[8]}`,
      ms: Date.parse(text),
    };
  }

  const text = (el, value) => { if (el.textContent !== value) el.textContent = value; };
  const el = (tag, cls, content) => {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (content !== undefined) node.textContent = content;
    return node;
  };
  const isStr = (v) => typeof v === 'string';
  const isInt = (v) => Number.isSafeInteger(v);
  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);

  // --- the GMV counter: rolls smoothly to each tick, lands exactly on it ----------------------

  const roll = { from: 0, to: 0, shown: null, t0: 0, dur: 600, raf: 0, lastTick: 0 };

  function drawGmv(minor) {
    const [major, frac] = moneyParts(minor);
    text($('gmv-major'), major);
    text($('gmv-minor'), frac);
    $('gmv').dataset.minor = String(minor);
  }

  function stepGmv(now) {
    const p = Math.min(1, (now - roll.t0) / roll.dur);
    const eased = 1 - Math.pow(1 - p, 3);
    const value = p >= 1 ? roll.to : Math.round(roll.from + (roll.to - roll.from) * eased);
    roll.shown = value;
    drawGmv(value);
    roll.raf = p < 1 ? requestAnimationFrame(stepGmv) : 0;
  }

  function setGmv(minor, animate) {
    if (!isInt(minor)) {  // beyond 2^53 minor units: no rolling, the server's text instead
      if (roll.raf) cancelAnimationFrame(roll.raf);
      roll.raf = 0;
      roll.shown = null;
      text($('gmv-major'), S.tick && isStr(S.tick.gmv) ? S.tick.gmv : '—');
      text($('gmv-minor'), '');
      $('gmv').dataset.minor = '';
      return;
    }
    const now = performance.now();
    if (!animate || roll.shown === null || document.hidden) {
      if (roll.raf) cancelAnimationFrame(roll.raf);
      roll.raf = 0;
      roll.shown = roll.to = minor;
      drawGmv(minor);
    } else {
      roll.from = roll.shown;
      roll.to = minor;
      roll.t0 = now;
      roll.dur = Math.max(250, Math.min(1200, now - roll.lastTick || 600));
      if (!roll.raf) roll.raf = requestAnimationFrame(stepGmv);
    }
    roll.lastTick = now;
  }

  // --- header: title, clock, status, picker ---------------------------------------------------

  function drawStatus() {
    const st = S.status;
    const pill = $('run-state');
    const state = st ? st.state : (S.run ? 'waiting' : 'waiting');
    pill.dataset.state = state;
    text(pill, { running: 'LIVE', finished: 'FINISHED', offline: 'OFFLINE' }[state] || 'WAITING');
    pill.title = state === 'offline'
      ? 'the publisher went away without saying goodbye (its MQTT will)' : '';
    if (!S.run) {
      text($('title'), 'Waiting for a run…');
      text($('subtitle'), S.broker ? `listening on ${S.broker}` : '');
      return;
    }
    if (!st) {
      text($('title'), S.run);
      text($('subtitle'), `waiting for run ${S.run} on ${S.broker}`);
      return;
    }
    text($('title'), st.title || st.scenario || S.run);
    const scale = isNum(st.scale) && st.scale !== 1 ? ` · scale ${st.scale}` : '';
    text($('subtitle'), `${S.run} · seed ${st.seed}${scale} · ${st.currency}`);
    drawProgressTrack();
  }

  function drawClock() {
    const t = S.tick && eventTime(S.tick.event_time);
    text($('event-date'), t ? t.date : '\u00a0');
    text($('event-time'), t ? t.time : '--:--:--');
    text($('event-zone'), t ? `event time · ${t.zone}` : '\u00a0');
  }

  function drawPicker(runs) {
    const picker = $('run-picker');
    picker.replaceChildren();
    const follow = el('option', '', 'newest run (follows new runs)');
    follow.value = '';
    picker.append(follow);
    const seen = new Set();
    for (const r of Array.isArray(runs) ? runs : []) {
      if (!r || !isStr(r.run) || seen.has(r.run)) continue;
      seen.add(r.run);
      const option = el('option', '', `${r.run} · ${isStr(r.state) ? r.state : '?'}`);
      option.value = r.run;
      picker.append(option);
    }
    if (!S.follow && S.run && !seen.has(S.run)) {
      const option = el('option', '', `${S.run} · waiting`);
      option.value = S.run;
      picker.append(option);
    }
    picker.value = S.follow ? '' : (S.run || '');
  }

  // --- the progress bar through the sales windows ----------------------------------------------

  function windows() {
    const ws = S.status && Array.isArray(S.status.windows) ? S.status.windows : [];
    return ws.map((w) => ({ name: w.name, start: Date.parse(w.start), end: Date.parse(w.end) }))
      .filter((w) => isStr(w.name) && w.end > w.start);
  }

  let trackKey = '';
  function drawProgressTrack() {
    const ws = windows();
    const key = JSON.stringify(ws);
    if (key === trackKey) return;
    trackKey = key;
    const track = $('progress-track');
    track.replaceChildren();
    for (const w of ws) {
      const seg = el('div', 'segment');
      seg.style.flexGrow = String(w.end - w.start);
      seg.title = w.name;
      seg.append(el('div', 'fill'));
      track.append(seg);
    }
    drawProgress();
  }

  function drawProgress() {
    const ws = windows();
    const segs = $('progress-track').children;
    if (!ws.length || segs.length !== ws.length) {
      text($('progress-label'), '');
      text($('progress-pct'), '');
      return;
    }
    const finished = S.status && S.status.state === 'finished';
    const t = S.tick ? Date.parse(S.tick.event_time) : NaN;
    let done = 0;
    let total = 0;
    let label = 'before the first sales window';
    ws.forEach((w, i) => {
      const len = w.end - w.start;
      const part = finished ? len : (Number.isFinite(t) ? Math.max(0, Math.min(len, t - w.start + 1)) : 0);
      total += len;
      done += part;
      segs[i].firstChild.style.width = `${(100 * part) / len}%`;
      const current = !finished && Number.isFinite(t) && t >= w.start && t < w.end;
      segs[i].classList.toggle('current', current);
      if (current) label = `sales window ${i + 1} of ${ws.length} · ${w.name}`;
      else if (Number.isFinite(t) && t >= w.end && i === ws.length - 1) label = 'after the last sales window';
      else if (Number.isFinite(t) && t >= w.end && i + 1 < ws.length && t < ws[i + 1].start) {
        label = `between windows · next: ${ws[i + 1].name}`;
      }
    });
    if (finished) label = `all ${ws.length} sales windows replayed`;
    text($('progress-label'), label);
    text($('progress-pct'), `${(100 * done / total).toFixed(1)} % of the festival's sale time`);
  }

  // --- orders per second: scaled to the full festival, sparkline, peak -------------------------

  const scale = () => (S.status && isNum(S.status.scale) && S.status.scale > 0 ? S.status.scale : 1);

  function notePeak(v, at) {
    if (!isNum(v)) return;
    if (!S.peak || v > S.peak.v) S.peak = { v, at };
  }

  function drawRate() {
    const s = scale();
    const last = S.rates.length ? S.rates[S.rates.length - 1].v : null;
    text($('rate'), last === null ? '—' : fmtInt(last));
    const runRate = S.tick && isNum(S.tick.orders_per_s) ? S.tick.orders_per_s : null;
    text($('rate-note'), s === 1 ? 'orders in the last full second of event time'
      : `scaled to the full festival: this run emits ${s} × the real orders`
        + (runRate === null ? '' : ` (${fmtInt(runRate)}/s)`));
    if (S.peak) {
      text($('peak'), `${fmtInt(S.peak.v)}/s`);
      const at = eventTime(S.peak.at);
      text($('peak-at'), at ? `at ${at.short}` : '');
    } else {
      text($('peak'), '—');
      text($('peak-at'), '');
    }
    drawSpark();
  }

  function drawSpark() {
    const pts = S.rates;
    if (pts.length < 2) {
      $('spark-line').setAttribute('d', '');
      $('spark-area').setAttribute('d', '');
      return;
    }
    const top = Math.max(1, ...pts.map((p) => p.v)) * 1.12; // the recent past fills the height
    const W = 600;
    const H = 140;
    const x = (i) => (W * i) / (RATE_POINTS - 1);
    const offset = RATE_POINTS - pts.length;
    const y = (v) => H - (H * v) / top;
    let d = '';
    pts.forEach((p, i) => { d += `${i ? 'L' : 'M'}${x(i + offset).toFixed(1)},${y(p.v).toFixed(1)}`; });
    $('spark-line').setAttribute('d', d);
    $('spark-area').setAttribute('d', `${d}L${x(pts.length - 1 + offset).toFixed(1)},${H}L${x(offset).toFixed(1)},${H}Z`);
    const peakY = S.peak && S.peak.v <= top ? y(S.peak.v) : -10; // the peak line, when in view
    $('spark-peak').setAttribute('y1', peakY.toFixed(1));
    $('spark-peak').setAttribute('y2', peakY.toFixed(1));
  }
  const RATE_POINTS = 150;

  // --- the leaderboard: rows keyed by brand, moved with a transform so overtakes animate -------

  const rows = new Map(); // brand -> li
  function drawBoard(brands) {
    const list = $('board');
    const clean = (Array.isArray(brands) ? brands : [])
      .filter((b) => b && isStr(b.brand) && isInt(b.rank) && isNum(b.gmv_minor))
      .sort((a, b) => a.rank - b.rank).slice(0, 12);
    const top = Math.max(1, ...clean.map((b) => b.gmv_minor));
    const keep = new Set();
    clean.forEach((b, i) => {
      keep.add(b.brand);
      let li = rows.get(b.brand);
      if (!li) {
        li = el('li');
        const rank = el('span', 'rank');
        const wrap = el('div', 'bar-wrap');
        wrap.append(el('div', 'bar'), el('span', 'name'));
        li.append(rank, wrap, el('span', 'value'));
        li.style.setProperty('--i', String(clean.length));
        list.append(li);
        rows.set(b.brand, li);
        li.getBoundingClientRect(); // start from below, so it slides in
      }
      const before = Number(li.dataset.rank || 99);
      li.classList.remove('leaving');
      li.classList.toggle('up', b.rank < before && before !== 99);
      li.dataset.rank = String(b.rank);
      li.style.setProperty('--i', String(i));
      text(li.querySelector('.rank'), String(b.rank));
      text(li.querySelector('.name'), b.brand);
      text(li.querySelector('.value'), isStr(b.gmv) ? b.gmv : fmtInt(b.gmv_minor));
      li.querySelector('.bar').style.width = `${Math.max(0, (100 * b.gmv_minor) / top)}%`;
    });
    for (const [brand, li] of rows) {
      if (keep.has(brand)) continue;
      rows.delete(brand);
      li.classList.add('leaving');
      setTimeout(() => li.remove(), 600);
    }
    // the rows share the panel's height (a wall shows ten brands as well as a laptop does)
    const room = list.clientHeight;
    if (clean.length && room > 0) {
      const gap = Math.max(4, Math.min(9, room * 0.012));
      const rowH = Math.max(18, Math.min(56, room / clean.length - gap));
      list.style.setProperty('--row-h', `${rowH.toFixed(1)}px`);
      list.style.setProperty('--row-gap', `${gap.toFixed(1)}px`);
    }
    text($('board-note'), clean.length ? `by GMV · ${clean.length} shown` : '');
  }

  // --- milestones: newest first, each painted once, a banner for the big ones -----------------

  const KIND = { gmv: 'GMV', brand_gmv: 'BRAND', rate_record: 'PEAK', time_to_value: 'FLASH' };
  const MAX_FEED = 3000;

  function addMilestone(m) {
    if (!m || !isStr(m.id) || !isStr(m.headline) || !isInt(m.seq) || !isStr(m.kind)) {
      S.pageErrors += 1;
      return;
    }
    const known = S.milestones.has(m.id);
    S.milestones.set(m.id, m);
    if (m.kind === 'rate_record' && isNum(m.value_minor)) notePeak(m.value_minor / scale(), m.event_time);
    if (known) return;
    const feed = $('feed');
    const li = el('li');
    li.dataset.id = m.id;
    li.dataset.seq = String(m.seq);
    li.dataset.kind = m.kind;
    const tag = el('span', 'tag', KIND[m.kind] || m.kind.toUpperCase().slice(0, 10));
    tag.dataset.kind = m.kind;
    const t = eventTime(m.event_time);
    li.append(tag, el('span', 'headline', m.headline),
      el('span', 'meta', [t ? t.short : '', isStr(m.value) ? m.value : ''].filter(Boolean).join(' · ')));
    // newest first: before the first item with a smaller seq
    let next = null;
    for (const item of feed.children) {
      if (Number(item.dataset.seq) < m.seq) { next = item; break; }
    }
    feed.insertBefore(li, next);
    while (feed.children.length > MAX_FEED) feed.lastChild.remove();
    text($('milestone-count'), `${S.milestones.size}`);
    if (!(m.id in S.shownAt)) {
      const inserted = performance.timeOrigin + performance.now();
      requestAnimationFrame(() => {
        S.shownAt[m.id] = { inserted, painted: performance.timeOrigin + performance.now() };
      });
    }
    if (m.kind === 'brand_gmv' && isInt(m.threshold_minor)) {
      const big = m.threshold_minor >= S.maxBrandThreshold && isInt(m.rank) && m.rank <= 3;
      S.maxBrandThreshold = Math.max(S.maxBrandThreshold, m.threshold_minor);
      if (big) banner(m, m.rank === 1 ? 'First to the line' : 'The race');
    } else if (m.kind === 'gmv') banner(m, 'Festival GMV');
    else if (m.kind === 'rate_record') banner(m, 'New peak');
    else if (m.kind === 'time_to_value') banner(m, 'Flash sale');
  }

  const bannerQueue = [];
  let bannerTimer = 0;
  function banner(m, kicker) {
    if (!S.live) return; // the past (a snapshot) goes to the feed only
    bannerQueue.push({ m, kicker });
    while (bannerQueue.length > 3) bannerQueue.shift(); // a burst: show the latest few
    if (!bannerTimer) nextBanner();
  }
  function nextBanner() {
    const item = bannerQueue.shift();
    const box = $('banner');
    if (!item) { box.hidden = true; bannerTimer = 0; return; }
    S.banners.push(item.m.headline);
    text($('banner-kicker'), item.kicker);
    text($('banner-headline'), item.m.headline);
    text($('banner-value'), isStr(item.m.value) ? item.m.value : '');
    box.hidden = false;
    box.style.animation = 'none';
    box.getBoundingClientRect();
    box.style.animation = '';
    bannerTimer = setTimeout(nextBanner, bannerQueue.length ? 2500 : 4500);
  }

  // --- ticks ---------------------------------------------------------------------------------

  function applyTick(tick, animate) {
    if (!tick || !isStr(tick.event_time) || !isNum(tick.orders_per_s)) { S.pageErrors += 1; return; }
    const previous = S.tick;
    S.tick = tick;
    setGmv(tick.gmv_minor, animate);
    text($('gmv-words'), isStr(tick.gmv) ? tick.gmv : '');
    text($('orders'), isInt(tick.orders) ? `${fmtInt(tick.orders)} orders` : '');
    const v = tick.orders_per_s / scale();
    if (!previous || previous.event_time !== tick.event_time) {
      S.rates.push({ t: tick.event_time, v });
      if (S.rates.length > RATE_POINTS) S.rates.shift();
    }
    notePeak(v, tick.event_time);
    drawClock();
    drawProgress();
    drawRate();
  }

  // --- the stream ----------------------------------------------------------------------------

  function reset(run) {
    S.run = run;
    S.status = null;
    S.tick = null;
    S.milestones.clear();
    S.rates = [];
    S.peak = null;
    S.maxBrandThreshold = 0;
    roll.shown = null;
    rows.clear();
    $('board').replaceChildren();
    $('feed').replaceChildren();
    text($('milestone-count'), '');
    trackKey = '';
    $('progress-track').replaceChildren();
    text($('gmv-major'), '—');
    text($('gmv-minor'), '');
    text($('gmv-words'), '');
    text($('orders'), '');
    $('gmv').dataset.minor = '';
  }

  function snapshot(data) {
    S.live = false;
    S.snapshots += 1;
    const run = data && isStr(data.run) ? data.run : null;
    if (run !== S.run || !data.status) reset(run);
    S.status = data && data.status ? data.status : null;
    drawStatus();
    for (const m of data && Array.isArray(data.milestones) ? data.milestones : []) addMilestone(m);
    if (data && data.tick) applyTick(data.tick, false);
    else { drawClock(); drawProgress(); drawRate(); }
    drawBoard(data && data.leaderboard ? data.leaderboard.brands : []);
    S.live = true;
  }

  function drawLink() {
    const box = $('reconnecting');
    let message = '';
    if (S.server === 'reconnecting') message = 'Reconnecting to the screen server…';
    else if (S.mqtt === 'reconnecting') message = `Reconnecting to the broker ${S.broker}…`;
    box.hidden = !message;
    text($('reconnecting-text'), message);
    document.body.classList.toggle('stale', Boolean(message));
    document.body.dataset.server = S.server;
    document.body.dataset.mqtt = S.mqtt;
    const state = message ? 'reconnecting' : (S.server === 'connected' && S.mqtt === 'connected'
      ? 'connected' : 'connecting');
    if (S.linkHistory[S.linkHistory.length - 1] !== state) S.linkHistory.push(state);
    drawDiagnostics();
  }

  function drawDiagnostics() {
    const diag = $('diag');
    const mal = S.diagnostics && S.diagnostics.malformed ? S.diagnostics.malformed : {};
    const bad = Object.values(mal).reduce((a, b) => a + (isInt(b) ? b : 0), 0);
    diag.replaceChildren();
    const parts = [
      [`malformed payloads ignored: ${bad}`, bad > 0],
      [`page errors: ${S.pageErrors}`, S.pageErrors > 0],
      [`stream connects: ${S.opens}`, false],
      [`broker: ${S.broker || '?'} (${S.mqtt})`, S.mqtt !== 'connected'],
    ];
    parts.forEach(([words, warn], i) => {
      if (i) diag.append(' · ');
      diag.append(el('span', warn ? 'bad' : '', words));
    });
    diag.dataset.malformed = String(bad);
    diag.title = Object.entries(mal).map(([k, v]) => `${k}: ${v}`).join(', ');
  }

  const handlers = {
    hello(data) {
      S.opens += 1;
      S.server = 'connected';
      S.broker = isStr(data.broker) ? data.broker : '';
      S.mqtt = data.link && isStr(data.link.mqtt) ? data.link.mqtt : 'connecting';
      S.mqttDetail = data.link && isStr(data.link.detail) ? data.link.detail : '';
      S.follow = Boolean(data.follow);
      if (data.diagnostics) S.diagnostics = data.diagnostics;
      drawPicker(data.runs);
      drawLink();
    },
    snapshot,
    status(data) {
      if (data.run !== S.run) return;
      S.status = data;
      drawStatus();
      drawProgress();
      drawRate();
    },
    tick(data) { if (data.run === S.run) applyTick(data, true); },
    leaderboard(data) { if (data.run === S.run) drawBoard(data.brands); },
    milestone(data) { if (data.run === S.run) addMilestone(data); },
    runs(data) { drawPicker(data); },
    link(data) {
      S.mqtt = isStr(data.mqtt) ? data.mqtt : S.mqtt;
      S.mqttDetail = isStr(data.detail) ? data.detail : '';
      drawLink();
    },
    diagnostics(data) { S.diagnostics = data; drawDiagnostics(); },
  };

  let source = null;
  let retryTimer = 0;
  function connect() {
    const wanted = new URLSearchParams(location.search).get('run');
    const url = wanted ? `/events?run=${encodeURIComponent(wanted)}` : '/events';
    if (source) source.close();
    source = new EventSource(url);
    for (const [name, handle] of Object.entries(handlers)) {
      source.addEventListener(name, (event) => {
        try {
          handle(JSON.parse(event.data));
        } catch (err) {
          S.pageErrors += 1;
          drawDiagnostics();
        }
      });
    }
    source.onerror = () => {
      S.server = 'reconnecting';
      drawLink();
      if (source.readyState === EventSource.CLOSED && !retryTimer) {
        retryTimer = setTimeout(() => { retryTimer = 0; connect(); }, 1000);
      }
    };
  }

  $('run-picker').addEventListener('change', (event) => {
    const params = new URLSearchParams(location.search);
    if (event.target.value) params.set('run', event.target.value); else params.delete('run');
    const query = params.toString();
    history.replaceState(null, '', query ? `?${query}` : location.pathname);
    connect();
  });

  drawDiagnostics();
  connect();
})();
