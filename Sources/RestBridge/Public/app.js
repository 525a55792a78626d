// Switchboard demo call page: signaling over /ws, one RTCPeerConnection per remote peer (mesh).
// Negotiation rule: the member that receives `peer-joined` makes the offer; the newcomer answers.
// `?room=CODE&name=NAME&token=TOKEN` fills the form; the token (an access token, or a guest token from
// POST /api/calls/{id}/guest) goes on the WebSocket URL. Hosts see who waits in the lobby and let them in.
// User text (names, chat) only ever goes through textContent.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const ui = {
    status: $("status"), joinForm: $("join-form"), room: $("room"), name: $("name"), join: $("join"),
    call: $("call"), videos: $("videos"), localVideo: $("local-video"), localLabel: $("local-label"),
    roomLabel: $("room-label"), callStatus: $("call-status"), leave: $("leave"), people: $("people"),
    messages: $("messages"), typing: $("typing"), chatForm: $("chat-form"), chatInput: $("chat-input"),
    endCall: $("end-call"),
  };

  const CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
  const RTC_CONFIG = { iceServers: [] };
  const TYPING_IDLE_MS = 3000;
  const TYPING_SHOW_MS = 6000;

  const state = {
    ws: null,
    wanted: null,          // {room, name} while the user wants to be in a room (survives reconnects)
    joined: false,
    room: null,
    peerId: null,
    role: null,
    call: null,
    localStream: null,
    peers: new Map(),      // peer id -> {id, name, role, pc, dc, tile, video, queue, typingTimer}
    chat: [],              // {id, from, name, text, ts}
    dcMessages: [],        // {from, text}
    reconnectDelay: 1000,
    reconnectTimer: null,
    typingSent: false,
    typingTimer: null,
    joinRef: null,         // the `ref` of the join in flight; an error carrying it means the join failed
    refCounter: 0,
    connects: 0,           // welcomes received: more than one means the socket was re-established
    token: null,           // from the page URL: who this page is (user or guest)
    lobby: new Map(),      // for hosts: peer id -> name of guests waiting to be let in
    out: null,             // why the server took us out of the call (ended, kicked)
  };

  // ---- small helpers -------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setStatus(text, kind = "") {
    ui.status.textContent = text;
    ui.status.dataset.kind = kind;
  }

  function randomCode() {
    const bytes = crypto.getRandomValues(new Uint8Array(9));
    const chars = Array.from(bytes, (b) => CODE_ALPHABET[b % CODE_ALPHABET.length]).join("");
    return `${chars.slice(0, 3)}-${chars.slice(3, 6)}-${chars.slice(6)}`;
  }

  function send(msg) {
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      state.ws.send(JSON.stringify(msg));
      return true;
    }
    return false;
  }

  function nameOf(peerId) {
    if (peerId === state.peerId) return state.wanted ? state.wanted.name : "You";
    const peer = state.peers.get(peerId);
    return peer ? peer.name : "someone";
  }

  // ---- media ---------------------------------------------------------------------------------

  async function ensureLocalMedia() {
    if (state.localStream) return state.localStream;
    try {
      state.localStream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
    } catch (err) {
      console.warn("getUserMedia failed, joining receive-only:", err.name, err.message);
      setStatus(`Camera/microphone unavailable (${err.name}); joining receive-only`, "warn");
      state.localStream = new MediaStream();
    }
    ui.localVideo.srcObject = state.localStream;
    return state.localStream;
  }

  function stopLocalMedia() {
    if (!state.localStream) return;
    state.localStream.getTracks().forEach((t) => t.stop());
    state.localStream = null;
    ui.localVideo.srcObject = null;
  }

  // ---- peer connections ----------------------------------------------------------------------

  function addPeer(info) {
    let peer = state.peers.get(info.peer);
    if (!peer) {
      peer = { id: info.peer, name: info.name, role: info.role, pc: null, dc: null, tile: null, video: null,
               offerer: false, queue: Promise.resolve(), typingTimer: null, typing: false };
      state.peers.set(info.peer, peer);
    } else {
      Object.assign(peer, { name: info.name ?? peer.name, role: info.role ?? peer.role });
    }
    renderPeople();
    return peer;
  }

  function removePeer(peerId) {
    const peer = state.peers.get(peerId);
    if (!peer) return;
    closePeerConnection(peer);
    clearTimeout(peer.typingTimer);
    state.peers.delete(peerId);
    renderPeople();
    renderTyping();
  }

  function closePeerConnection(peer) {
    if (peer.dc) peer.dc.close();
    if (peer.pc) peer.pc.close();
    peer.dc = null;
    peer.pc = null;
    if (peer.tile) peer.tile.remove();
    peer.tile = null;
    peer.video = null;
  }

  function ensureTile(peer) {
    if (peer.tile) return peer.video;
    peer.tile = el("figure", "tile remote");
    peer.tile.dataset.peer = peer.id;
    peer.video = el("video");
    peer.video.autoplay = true;
    peer.video.playsInline = true;
    peer.tile.append(peer.video, el("figcaption", "", peer.name));
    ui.videos.append(peer.tile);
    return peer.video;
  }

  function createPeerConnection(peer) {
    const pc = new RTCPeerConnection(RTC_CONFIG);
    peer.pc = pc;
    const stream = state.localStream || new MediaStream();
    for (const kind of ["audio", "video"]) {
      const track = stream.getTracks().find((t) => t.kind === kind);
      if (track) pc.addTrack(track, stream);
    }

    pc.onicecandidate = ({ candidate }) => {
      if (candidate) send({ type: "signal", to: peer.id, data: { candidate: candidate.toJSON() } });
    };
    pc.ontrack = ({ track, streams }) => {
      const video = ensureTile(peer);
      const remote = streams[0] || video.srcObject || new MediaStream();
      if (!streams[0]) remote.addTrack(track);
      if (video.srcObject !== remote) video.srcObject = remote;
      video.play().catch(() => {}); // autoplay may need a gesture; the element keeps trying
    };
    pc.onconnectionstatechange = () => {
      if (peer.tile) peer.tile.dataset.state = pc.connectionState;
      renderPeople();
      if (pc.connectionState === "failed" && peer.offerer) restartIce(peer);
    };
    pc.ondatachannel = ({ channel }) => attachDataChannel(peer, channel);
    return pc;
  }

  function attachDataChannel(peer, dc) {
    peer.dc = dc;
    dc.onopen = () => { console.log(`data channel ${dc.label} open with ${peer.id}`); renderPeople(); };
    dc.onclose = () => renderPeople();
    dc.onmessage = ({ data }) => {
      state.dcMessages.push({ from: peer.id, text: String(data) });
      addMessage({ name: peer.name, text: String(data), ts: new Date().toISOString(), p2p: true });
    };
  }

  async function makeOffer(peer) {
    const pc = createPeerConnection(peer);
    peer.offerer = true;
    attachDataChannel(peer, pc.createDataChannel("chat-dc"));
    // Receive even when we have nothing to send.
    const kinds = pc.getTransceivers().map((t) => t.receiver.track.kind);
    for (const kind of ["audio", "video"]) {
      if (!kinds.includes(kind)) pc.addTransceiver(kind, { direction: "recvonly" });
    }
    await pc.setLocalDescription();
    send({ type: "signal", to: peer.id, data: { sdp: pc.localDescription.toJSON() } });
  }

  async function restartIce(peer) {
    try {
      await peer.pc.setLocalDescription(await peer.pc.createOffer({ iceRestart: true }));
      send({ type: "signal", to: peer.id, data: { sdp: peer.pc.localDescription.toJSON() } });
    } catch (err) {
      console.warn("ICE restart failed:", err);
    }
  }

  async function handleSignal(peer, data) {
    if (!data || typeof data !== "object") return;
    if (data.sdp) {
      const desc = data.sdp;
      if (desc.type === "offer") {
        if (!peer.pc) createPeerConnection(peer);
        await peer.pc.setRemoteDescription(desc);
        await peer.pc.setLocalDescription();
        send({ type: "signal", to: peer.id, data: { sdp: peer.pc.localDescription.toJSON() } });
      } else if (desc.type === "answer" && peer.pc) {
        await peer.pc.setRemoteDescription(desc);
      }
    } else if (data.candidate && peer.pc) {
      try {
        await peer.pc.addIceCandidate(data.candidate);
      } catch (err) {
        console.warn("addIceCandidate failed:", err.message);
      }
    }
  }

  // ---- socket --------------------------------------------------------------------------------

  function wsURL() {
    const base = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws`;
    return state.token ? `${base}?token=${encodeURIComponent(state.token)}` : base;
  }

  function connect() {
    clearTimeout(state.reconnectTimer);
    const ws = new WebSocket(wsURL());
    state.ws = ws;
    setStatus("Connecting…");
    ws.onmessage = (event) => {
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      if (msg && typeof msg.type === "string") handleMessage(msg);
    };
    ws.onclose = (event) => {
      if (state.ws !== ws) return; // an old socket we closed on purpose
      console.warn(`signaling socket closed: code ${event.code}${event.reason ? `, ${event.reason}` : ""}`);
      state.ws = null;
      resetRoom();
      if (!state.wanted) { setStatus("Disconnected"); return; }
      const delay = state.reconnectDelay;
      state.reconnectDelay = Math.min(delay * 2, 15000);
      setStatus(`Connection lost (${event.code || "no code"}); reconnecting in ${Math.round(delay / 1000)} s…`, "warn");
      state.reconnectTimer = setTimeout(connect, delay);
    };
  }

  function handleMessage(msg) {
    switch (msg.type) {
      case "welcome":
        state.connects += 1;
        state.reconnectDelay = 1000;
        if (state.wanted) sendJoin();
        break;
      case "joined": onJoined(msg); break;
      case "lobby":
        if (msg.peer) { // to a host: someone waits
          state.lobby.set(msg.peer, msg.name);
          systemMessage(`${msg.name} is waiting in the lobby`);
          renderPeople();
        } else {
          setStatus("Waiting in the lobby for the host to let you in…");
        }
        break;
      case "peer-joined":
        if (!state.joined) break;
        addPeer(msg);
        systemMessage(`${msg.name} joined`);
        makeOffer(state.peers.get(msg.peer)).catch((err) => console.error("offer failed:", err));
        break;
      case "peer-left":
        if (msg.peer === state.peerId || (!state.joined && state.wanted)) { // our own: we are out
          onOut(msg.reason);
          break;
        }
        if (state.lobby.delete(msg.peer)) { renderPeople(); break; }
        if (state.peers.has(msg.peer)) systemMessage(`${nameOf(msg.peer)} left (${msg.reason || "left"})`);
        removePeer(msg.peer);
        break;
      case "signal": {
        if (!state.joined) break;
        const peer = state.peers.get(msg.from) || addPeer({ peer: msg.from, name: "peer" });
        peer.queue = peer.queue.then(() => handleSignal(peer, msg.data))
          .catch((err) => console.error("signal handling failed:", err));
        break;
      }
      case "chat": // typing is cleared by the sender's own typing:false (a chat may arrive after it)
        state.chat.push(msg);
        addMessage(msg);
        break;
      case "typing": setPeerTyping(msg.from, msg.on === true); break;
      case "call": onCall(msg.call); break;
      case "error": onError(msg); break;
      default: break; // ack, quality, presence, notification: nothing to show here
    }
  }

  function sendJoin() {
    state.joinRef = `join-${++state.refCounter}`;
    setStatus(`Joining ${state.wanted.room}…`);
    send({ type: "join", room: state.wanted.room, name: state.wanted.name, ref: state.joinRef });
  }

  /// The server took us out of the call (it ended, or a host removed us): stay on the page, do not rejoin.
  function onOut(reason) {
    state.out = reason;
    state.wanted = null;
    resetRoom();
    stopLocalMedia();
    ui.join.disabled = false;
    ui.endCall.hidden = true;
    setStatus(reason === "kicked" ? "The host removed you from the call" : "The call has ended", "warn");
  }

  function onJoined(msg) {
    state.joined = true;
    state.joinRef = null;
    state.room = msg.room;
    state.peerId = msg.peer;
    state.role = msg.role;
    ui.endCall.hidden = msg.role !== "host";
    for (const info of msg.peers || []) addPeer(info);
    ui.messages.replaceChildren();
    state.chat = [];
    for (const m of msg.chat || []) { state.chat.push(m); addMessage(m); }
    onCall(msg.call);
    ui.joinForm.hidden = true;
    ui.call.hidden = false;
    ui.roomLabel.textContent = `Room ${msg.room}`;
    ui.localLabel.textContent = `${state.wanted.name} (you)`;
    const url = new URL(location.href);
    url.searchParams.set("room", msg.room);
    url.searchParams.set("name", state.wanted.name);
    history.replaceState(null, "", url);
    setStatus(`In room ${msg.room} as ${state.wanted.name}`, "ok");
    renderPeople();
  }

  function onCall(call) {
    if (!call) return;
    state.call = call;
    const n = call.participants;
    ui.callStatus.textContent = `Call ${call.status}` + (typeof n === "number" ? ` · ${n} in call` : "") +
      (call.locked ? " · locked" : "") + (call.recording ? " · recording" : "");
    ui.callStatus.dataset.status = call.status;
  }

  function onError(msg) {
    console.warn("server error:", msg.code, msg.message);
    const text = `Server says: ${msg.message || msg.code} (${msg.code})`;
    if (msg.ref && msg.ref === state.joinRef) {
      // The join itself failed: give the form back instead of retrying forever.
      state.wanted = null;
      state.joinRef = null;
      ui.call.hidden = true;
      ui.joinForm.hidden = false;
      ui.join.disabled = false;
    }
    setStatus(text, "error");
  }

  function resetRoom() {
    for (const peer of state.peers.values()) closePeerConnection(peer);
    state.peers.clear();
    state.lobby.clear();
    state.joined = false;
    state.peerId = null;
    clearTimeout(state.typingTimer);
    state.typingSent = false;
    renderPeople();
    renderTyping();
  }

  // ---- rendering -----------------------------------------------------------------------------

  function renderPeople() {
    const items = [];
    if (state.joined) {
      const me = el("li", "me", `${state.wanted ? state.wanted.name : "You"} (you)`);
      items.push(me);
    }
    for (const [peerId, name] of state.lobby) {
      const li = el("li", "waiting", `${name} (waiting)`);
      li.dataset.peer = peerId;
      const admit = el("button", "admit", "Let in");
      admit.type = "button";
      admit.addEventListener("click", () => { send({ type: "admit", peer: peerId }); state.lobby.delete(peerId); renderPeople(); });
      const remove = el("button", "danger kick", "Remove");
      remove.type = "button";
      remove.addEventListener("click", () => send({ type: "kick", peer: peerId }));
      li.append(admit, remove);
      items.push(li);
    }
    for (const peer of state.peers.values()) {
      const li = el("li", "", peer.name || peer.id);
      const link = peer.pc ? peer.pc.connectionState : "waiting";
      li.append(el("span", `badge ${link}`, link));
      if (peer.dc && peer.dc.readyState === "open") li.append(el("span", "badge dc", "data"));
      items.push(li);
    }
    ui.people.replaceChildren(...items);
  }

  function addMessage(m) {
    const li = el("li", m.p2p ? "p2p" : m.from ? "" : "system");
    if (m.from && m.from === state.peerId) li.classList.add("mine");
    const time = m.ts ? new Date(m.ts) : null;
    if (time && !Number.isNaN(time.getTime())) {
      const t = el("time", "", time.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }));
      t.dateTime = m.ts;
      li.append(t);
    }
    if (m.name) li.append(el("strong", "", m.p2p ? `${m.name} (direct)` : m.name));
    li.append(el("span", "text", m.text));
    ui.messages.append(li);
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  function systemMessage(text) {
    addMessage({ text });
  }

  function setPeerTyping(peerId, on) {
    const peer = state.peers.get(peerId);
    if (!peer) return;
    clearTimeout(peer.typingTimer);
    peer.typing = on;
    // Never trust a stale "on": fade it out if no "off" arrives.
    if (on) peer.typingTimer = setTimeout(() => setPeerTyping(peerId, false), TYPING_SHOW_MS);
    renderTyping();
  }

  function renderTyping() {
    const names = [...state.peers.values()].filter((p) => p.typing).map((p) => p.name);
    ui.typing.textContent = names.length === 0 ? "" :
      names.length === 1 ? `${names[0]} is typing…` : `${names.join(", ")} are typing…`;
  }

  // ---- user actions --------------------------------------------------------------------------

  async function join(room, name) {
    state.wanted = { room, name };
    ui.join.disabled = true;
    await ensureLocalMedia();
    if (!state.wanted) return; // left while the camera prompt was up
    if (state.ws && state.ws.readyState === WebSocket.OPEN) {
      sendJoin();
    } else if (!state.ws) {
      connect();
    }
  }

  function leave() {
    send({ type: "leave" });
    state.wanted = null;
    clearTimeout(state.reconnectTimer);
    const ws = state.ws;
    state.ws = null;
    if (ws) ws.close(1000, "left");
    resetRoom();
    stopLocalMedia();
    ui.call.hidden = true;
    ui.joinForm.hidden = false;
    ui.join.disabled = false;
    setStatus("You left the room");
  }

  function sendTyping(on) {
    if (state.typingSent === on || !state.joined) return;
    state.typingSent = on;
    send({ type: "typing", on });
  }

  ui.joinForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const room = ui.room.value.trim();
    const name = ui.name.value.trim();
    if (!room || !name) return;
    join(room, name).catch((err) => { console.error("join failed:", err); setStatus(String(err), "error"); });
  });

  ui.leave.addEventListener("click", leave);
  ui.endCall.addEventListener("click", () => send({ type: "call", action: "end" }));

  ui.chatForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = ui.chatInput.value;
    if (!text.trim()) return;
    if (send({ type: "chat", text })) ui.chatInput.value = "";
    clearTimeout(state.typingTimer);
    sendTyping(false);
  });

  ui.chatInput.addEventListener("input", () => {
    clearTimeout(state.typingTimer);
    if (!ui.chatInput.value) { sendTyping(false); return; }
    sendTyping(true);
    state.typingTimer = setTimeout(() => sendTyping(false), TYPING_IDLE_MS);
  });

  window.addEventListener("pagehide", () => { if (state.joined) send({ type: "leave" }); });

  // ---- start ---------------------------------------------------------------------------------

  const params = new URLSearchParams(location.search);
  ui.room.value = params.get("room") || randomCode();
  ui.name.value = params.get("name") || "";
  state.token = params.get("token");
  (ui.name.value ? ui.join : ui.name).focus();

  // Read-only view of the state plus a few actions, for automated browser tests.
  window.switchboardTest = {
    get joined() { return state.joined; },
    get peerId() { return state.peerId; },
    get room() { return state.room; },
    get remotePeerId() { return state.peers.keys().next().value ?? null; },
    get remotePeerIds() { return [...state.peers.keys()]; },
    get dcOpen() { return [...state.peers.values()].some((p) => p.dc && p.dc.readyState === "open"); },
    get dcMessages() { return state.dcMessages.slice(); },
    get chat() { return state.chat.map(({ id, from, name, text, ts }) => ({ id, from, name, text, ts })); },
    get call() { return state.call; },
    get connectionStates() {
      return Object.fromEntries([...state.peers.values()].map((p) => [p.id, p.pc ? p.pc.connectionState : null]));
    },
    get typing() { return [...state.peers.values()].filter((p) => p.typing).map((p) => p.id); },
    get socketOpen() { return !!state.ws && state.ws.readyState === WebSocket.OPEN; },
    get connects() { return state.connects; },
    get status() { return ui.status.textContent; },
    get role() { return state.role; },
    get lobby() { return [...state.lobby.keys()]; },
    get out() { return state.out; },
    admit(peerId) { // clicks the button a host would click
      const item = [...ui.people.querySelectorAll("li.waiting")].find((li) => li.dataset.peer === peerId);
      if (item) item.querySelector("button.admit").click();
      return !!item;
    },
    snapshot() {
      const { joined, peerId, room, remotePeerId, remotePeerIds, dcOpen, dcMessages, chat, call,
              connectionStates, typing, socketOpen, connects, status } = this;
      return { joined, peerId, room, remotePeerId, remotePeerIds, dcOpen, dcMessages, chat, call,
               connectionStates, typing, socketOpen, connects, status };
    },
    async inboundVideoBytes() {
      let total = 0;
      for (const peer of state.peers.values()) {
        if (!peer.pc) continue;
        const stats = await peer.pc.getStats();
        stats.forEach((r) => {
          if (r.type === "inbound-rtp" && r.kind === "video") total += r.bytesReceived || 0;
        });
      }
      return total;
    },
    sendDataChannel(text) {
      let sent = 0;
      for (const peer of state.peers.values()) {
        if (peer.dc && peer.dc.readyState === "open") { peer.dc.send(text); sent += 1; }
      }
      return sent;
    },
    sendChat(text) { return send({ type: "chat", text }); },
    setTyping(on) { sendTyping(on); },
    dropSocket() { if (state.ws) state.ws.close(4000, "test"); },
  };
})();
