// livemotion browser client: WebRTC to the local server and the JSON control API on /ws.
"use strict";

const livemotion = (() => {
  const token = new URLSearchParams(location.search).get("token");
  const withToken = (path) => (token ? `${path}?token=${encodeURIComponent(token)}` : path);

  // mode "filter": send `localStream` and get it back filtered; mode "view": receive the server's source.
  async function connect(mode, videoElement, localStream) {
    const peer = new RTCPeerConnection({ iceServers: [] });
    if (localStream) {
      localStream.getVideoTracks().forEach((track) => peer.addTrack(track, localStream));
    } else {
      peer.addTransceiver("video", { direction: "recvonly" });
    }
    peer.ontrack = (event) => {
      videoElement.srcObject = event.streams[0] || new MediaStream([event.track]);
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
  const AUS = [
    [1, "inner brow raiser"], [2, "outer brow raiser"], [4, "brow lowerer"], [5, "upper lid raiser"],
    [6, "cheek raiser"], [7, "lid tightener"], [9, "nose wrinkler"], [10, "upper lip raiser"],
    [12, "lip corner puller"], [14, "dimpler"], [15, "lip corner depressor"], [17, "chin raiser"],
    [20, "lip stretcher"], [23, "lip tightener"], [43, "eyes closed"],
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

  return { connect, control, emotionButtons, EMOTIONS, AUS };
})();
