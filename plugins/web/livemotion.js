// livemotion browser client: WebRTC to the local server and the JSON control API on /ws.
"use strict";

const livemotion = (() => {
  const token = new URLSearchParams(location.search).get("token");
  const withToken = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);

  // mode "filter": send `localStream` and get it back filtered; mode "view": receive the server's
  // source, filtered into `videoElement` and, given `rawElement`, unfiltered there.
  async function connect(mode, videoElement, localStream, rawElement) {
    const peer = new RTCPeerConnection({ iceServers: [] });
    if (localStream) {
      localStream.getVideoTracks().forEach((track) => peer.addTrack(track, localStream));
    } else {
      peer.addTransceiver("video", { direction: "recvonly" });
      if (rawElement) peer.addTransceiver("video", { direction: "recvonly" });
    }
    peer.ontrack = (event) => {
      const element = peer.getTransceivers().indexOf(event.transceiver) === 1 && rawElement ? rawElement : videoElement;
      element.srcObject = new MediaStream([event.track]);
    };
    await peer.setLocalDescription(await peer.createOffer());
    await new Promise((resolve) => {  // one round trip with every candidate in the SDP
      if (peer.iceGatheringState === "complete") return resolve();
      peer.addEventListener("icegatheringstatechange", () => peer.iceGatheringState === "complete" && resolve());
    });
    const response = await fetch(withToken("/offer"), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ sdp: peer.localDescription.sdp, type: peer.localDescription.type, mode }),
    });
    if (!response.ok) throw new Error(`server refused the call: ${await response.text()}`);
    await peer.setRemoteDescription(await response.json());
    return peer;
  }

  // Control socket; `onMessage` receives every reply ({type: "state"|"error"|"stats", ...}).
  function control(onMessage) {
    const scheme = location.protocol === "https:" ? "wss" : "ws";
    const socket = new WebSocket(`${scheme}://${location.host}${withToken("/ws")}`);
    const queue = [];
    socket.onopen = () => queue.splice(0).forEach((m) => socket.send(m));
    socket.onmessage = (event) => onMessage(JSON.parse(event.data));
    return {
      send(message) {
        const text = JSON.stringify(message);
        socket.readyState === WebSocket.OPEN ? socket.send(text) : queue.push(text);
      },
      socket,
    };
  }

  const EMOTIONS = ["neutral", "happy", "sad", "angry", "surprised", "fearful", "disgusted", "contemptuous"];
  // [number, FACS name, what it does / where it shows]
  const AUS = [
    [1, "inner brow raiser", "lifts the inner brows: sadness, surprise, fear"],
    [2, "outer brow raiser", "lifts the outer brows: surprise"],
    [4, "brow lowerer", "draws the brows down and together: anger, concentration"],
    [5, "upper lid raiser", "widens the eyes: surprise, fear, anger"],
    [6, "cheek raiser", "lifts the cheeks, crow's feet: a felt smile"],
    [7, "lid tightener", "narrows the eyes: anger, disgust"],
    [9, "nose wrinkler", "wrinkles the nose: disgust"],
    [10, "upper lip raiser", "lifts the upper lip: disgust"],
    [12, "lip corner puller", "pulls the corners up: a smile"],
    [14, "dimpler", "tightens the corners inward: contempt (one side)"],
    [15, "lip corner depressor", "pulls the corners down: sadness"],
    [17, "chin raiser", "pushes the chin and lower lip up: sadness, doubt"],
    [20, "lip stretcher", "stretches the lips sideways: fear"],
    [23, "lip tightener", "narrows and tightens the lips: anger"],
    [43, "eyes closed", "closes the eyes"],
  ];

  // Emotion buttons into `container`; clicking one sends it. Returns a function marking the active one.
  function emotionButtons(container, send) {
    const buttons = EMOTIONS.map((emotion) => {
      const button = document.createElement("button");
      button.textContent = emotion;
      button.dataset.emotion = emotion;
      button.onclick = () => send({ type: "set", emotion });
      container.appendChild(button);
      return button;
    });
    return (state) => buttons.forEach((b) => b.classList.toggle("active", state.active && b.dataset.emotion === state.emotion));
  }

  // Keys: 1-8 the emotions (in EMOTIONS order), 0 off, B bypass. Not while typing in a field.
  const SHORTCUTS = "1-8: " + EMOTIONS.map((e, i) => `${i + 1} ${e}`).join(", ") + "; 0: off; B: bypass on/off";
  function shortcuts(send, state) {
    document.addEventListener("keydown", (event) => {
      if (event.target.closest("input, select, textarea") || event.ctrlKey || event.metaKey || event.altKey) return;
      const number = Number(event.key);
      if (event.key >= "1" && event.key <= "8") send({ type: "set", emotion: EMOTIONS[number - 1] });
      else if (event.key === "0") send({ type: "set", active: false });
      else if (event.key.toLowerCase() === "b") send({ type: "set", bypass: !state().bypass });
    });
  }

  // A <select> listing `names` after a first, empty choice labelled `none`; rebuilt only when they change.
  // POST a file to ``path`` (with its query): an upload to /animate or /style; the token rides along.
  async function upload(path, body) {
    const url = token ? `${path}${path.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}` : path;
    const response = await fetch(url, { method: "POST", body });
    if (!response.ok) throw new Error(await response.text());
    return response;
  }

  // The options of a select: a first empty one labelled ``none`` (null: no empty option), then ``names``.
  function fillSelect(select, names, none) {
    const values = none === null ? [...(names || [])] : ["", ...(names || [])];
    if ([...select.options].map((o) => o.value).join() === values.join()) return;
    select.innerHTML = "";
    values.forEach((name) => select.add(new Option(name || none, name)));
  }

  return { connect, control, emotionButtons, shortcuts, fillSelect, upload, EMOTIONS, AUS, SHORTCUTS };
})();
