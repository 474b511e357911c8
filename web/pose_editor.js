// DreamDance skeleton editor: an in-graph editor for the DreamDancePoseEditor node.
//
// The edited pose is the node's `pose_json` widget: plain POSE_KEYPOINT JSON (a list of frames
// {people: [{pose_keypoints_2d, face_keypoints_2d, hand_left_keypoints_2d, hand_right_keypoints_2d}],
// canvas_width, canvas_height}, pixel coordinates). That widget is saved with the workflow, so edits survive
// save/load and drag-and-drop, and the backend node reads it. Marked keyframes go to the `keyframes` widget.
// Only relative imports and no network access: the pack works whatever its folder is called.
//
// Mouse: drag a joint to move it; right-click a joint to hide/show it (hidden = confidence 0, position kept);
// click a joint to select its person. Buttons: frame stepping, key mark, add/duplicate/delete frame,
// add/remove person, show the selected person's hidden points, take the input pose from the last run.

import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPE = "DreamDancePoseEditor";
const PARTS = ["pose_keypoints_2d", "face_keypoints_2d", "hand_left_keypoints_2d", "hand_right_keypoints_2d"];
// OpenPose colours (dreamdance_core/pose/schema.py): joint i and bone i of BODY_BONES.
const BODY_COLORS = [
  [255, 0, 0], [255, 85, 0], [255, 170, 0], [255, 255, 0], [170, 255, 0], [85, 255, 0],
  [0, 255, 0], [0, 255, 85], [0, 255, 170], [0, 255, 255], [0, 170, 255], [0, 85, 255],
  [0, 0, 255], [85, 0, 255], [170, 0, 255], [255, 0, 255], [255, 0, 170], [255, 0, 85],
];
const BODY_BONES = [
  [1, 2], [1, 5], [2, 3], [3, 4], [5, 6], [6, 7], [1, 8], [8, 9], [9, 10],
  [1, 11], [11, 12], [12, 13], [1, 0], [0, 14], [14, 16], [0, 15], [15, 17],
];
const HAND_EDGES = [0, 1, 2, 3, 4].flatMap((f) => [0, 1, 2, 3].map((i) => [i === 0 ? 0 : 4 * f + i, 4 * f + i + 1]));
// A standing person, in units of its height around the canvas centre (added by "+ person").
const TEMPLATE = [
  [0, -0.34], [0, -0.27], [-0.09, -0.27], [-0.14, -0.14], [-0.16, -0.02], [0.09, -0.27], [0.14, -0.14],
  [0.16, -0.02], [-0.05, -0.02], [-0.05, 0.16], [-0.05, 0.34], [0.05, -0.02], [0.05, 0.16], [0.05, 0.34],
  [-0.02, -0.355], [0.02, -0.355], [-0.04, -0.345], [0.04, -0.345],
];
// The OpenPose program writes BODY_25 bodies: body-18 point i is BODY_25 point BODY25_TO_BODY18[i]
// (dreamdance_core/pose/schema.py; the mid-hip and the six foot points are dropped, as the node does).
const BODY25_TO_BODY18 = [0, 1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18];
const NUM_BODY = 18;
// Point counts the node reads per part (dreamdance_core/pose/io.py; BODY_25 is mapped first): others are resized.
const POINT_COUNTS = {
  pose_keypoints_2d: [NUM_BODY, 25],
  face_keypoints_2d: [70, 68],
  hand_left_keypoints_2d: [21],
  hand_right_keypoints_2d: [21],
};
const DEFAULT_CANVAS = [512, 768];
const MAX_NOTES = 4; // messages listed under the toolbar; the rest are counted
const HIT_RADIUS = 9; // screen pixels
const EDITOR_HEIGHT = 420;

const isObject = (v) => typeof v === "object" && v !== null && !Array.isArray(v);
const describe = (v) => {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  if (typeof v === "string") return `the text ${JSON.stringify(v.length > 20 ? `${v.slice(0, 20)}…` : v)}`;
  return typeof v === "object" ? "an object" : `the ${typeof v} ${String(v)}`;
};
const emptyPerson = () => Object.fromEntries(PARTS.map((part) => [part, null]));

// Any parsed pose_json -> frames the editor can draw and edit, plus notes for the user. Accepts what the node
// accepts (a list of frames or one frame, 18-point or BODY_25 bodies, null/[] parts) and shows what it does not
// (frames that are numbers or text, null people, parts that are not lists) as empty, with a note, instead of failing.
export function normaliseFrames(data) {
  const notes = [];
  let body25 = 0;
  const list = Array.isArray(data) ? data : [data];
  const size = (v) => Number.isFinite(v) && v > 0;
  const sized = list.find((f) => isObject(f) && size(f.canvas_width) && size(f.canvas_height));
  const canvas = sized ? [sized.canvas_width, sized.canvas_height] : DEFAULT_CANVAS;
  const frames = list.map((frame, f) => {
    if (!isObject(frame)) {
      notes.push(`frame ${f + 1} is ${describe(frame)}, not a pose: shown empty (an edit replaces it)`);
      return { people: [], canvas_width: canvas[0], canvas_height: canvas[1] }; // the other frames' canvas
    }
    const out = { ...frame };
    const bad = ["canvas_width", "canvas_height"].filter((key) => key in out && !size(out[key]));
    if (bad.length) {
      const what = bad.map((key) => `${key} is ${describe(out[key])}`).join(", ");
      notes.push(`frame ${f + 1}: ${what}, not a positive number: ${canvas[0]}x${canvas[1]} used`);
      [out.canvas_width, out.canvas_height] = canvas; // the node needs both sides or none
    }
    if (out.people === undefined || out.people === null) out.people = [];
    if (!Array.isArray(out.people)) {
      notes.push(`frame ${f + 1}: people is ${describe(out.people)}, not a list: shown empty`);
      out.people = [];
    }
    out.people = out.people.map((person, p) => {
      const where = `frame ${f + 1} person ${p + 1}`;
      if (!isObject(person)) {
        notes.push(`${where} is ${describe(person)}: shown as a person without points`);
        return emptyPerson();
      }
      const copy = { ...person };
      for (const part of PARTS) {
        let pts = copy[part];
        if (pts === undefined || pts === null) continue;
        if (!Array.isArray(pts)) {
          notes.push(`${where}: ${part} is ${describe(pts)}, not a list of numbers: ignored`);
          copy[part] = null;
          continue;
        }
        if (pts.some((v) => typeof v !== "number" || !Number.isFinite(v))) {
          notes.push(`${where}: ${part} holds values that are not numbers: read as 0`);
          pts = pts.map((v) => (typeof v === "number" && Number.isFinite(v) ? v : 0));
        }
        if (pts.length % 3) {
          notes.push(`${where}: ${part} has ${pts.length} numbers, not (x, y, confidence) triples: the rest dropped`);
          pts = pts.slice(0, pts.length - (pts.length % 3));
        }
        if (part === "pose_keypoints_2d" && pts.length === 75) {
          body25 += 1;
          pts = BODY25_TO_BODY18.flatMap((i) => pts.slice(3 * i, 3 * i + 3));
        }
        const counts = POINT_COUNTS[part], n = pts.length / 3;
        if (n && !counts.includes(n)) {
          const how = n > counts[0] ? `first ${counts[0]} kept` : `padded to ${counts[0]} with missing points`;
          notes.push(`${where}: ${part} has ${n} points (the node reads ${counts.join(" or ")}): ${how}`);
          pts = [...pts.slice(0, 3 * counts[0]), ...Array(Math.max(0, 3 * (counts[0] - n))).fill(0)];
        }
        copy[part] = pts;
      }
      return copy;
    });
    return out;
  });
  if (body25) {
    notes.unshift(`BODY_25 body mapped to the 18-point body as the node maps it (mid-hip and feet dropped) in ` +
      `${body25} person-frame(s); an edit saves the mapped pose`);
  }
  return { frames, notes };
}

const rgb = (c, f = 1) => `rgb(${Math.round(c[0] * f)},${Math.round(c[1] * f)},${Math.round(c[2] * f)})`;

class PoseEditor {
  constructor(node) {
    this.node = node;
    this.frame = 0;
    this.selectedPerson = 0;
    this.drag = null;
    this.background = null;
    this.inputPose = null;
    this.error = null;
    this.notes = [];
    this.element = this.buildDom();
    this.load();
  }

  widget(name) {
    return this.node.widgets?.find((w) => w.name === name);
  }

  // ---- state <-> widgets ------------------------------------------------------------------------------------
  load() {
    const text = this.widget("pose_json")?.value ?? "";
    try {
      const parsed = text.trim() ? JSON.parse(text) : [];
      ({ frames: this.frames, notes: this.notes } = normaliseFrames(parsed));
      this.error = null;
    } catch (e) {
      this.frames = [];
      this.notes = [];
      this.error = `pose_json is not valid JSON: ${e.message}`;
    }
    this.frame = Math.min(this.frame, Math.max(0, this.frames.length - 1));
    this.refresh();
  }

  save() {
    const widget = this.widget("pose_json");
    if (widget) widget.value = JSON.stringify(this.frames);
    // pose_json now holds exactly what is shown: the notes on the data it held before no longer apply
    this.error = null;
    this.notes = [];
    this.showMessage();
    this.node.setDirtyCanvas?.(true, true);
  }

  keys() {
    const text = String(this.widget("keyframes")?.value ?? "");
    return new Set(text.split(/[,;]/).map((s) => s.trim()).filter((s) => /^\d+$/.test(s)).map(Number));
  }

  setKeys(keys) {
    const widget = this.widget("keyframes");
    if (widget) widget.value = [...keys].filter((k) => k < this.frames.length).sort((a, b) => a - b).join(", ");
  }

  canvasSize() {
    const f = this.frames[this.frame] ?? this.frames[0] ?? {};
    return [f.canvas_width || DEFAULT_CANVAS[0], f.canvas_height || DEFAULT_CANVAS[1]];
  }

  people() {
    const f = this.frames[this.frame];
    if (isObject(f) && !Array.isArray(f.people)) f.people = [];
    return isObject(f) ? f.people : [];
  }

  // ---- DOM ------------------------------------------------------------------------------------------------
  buildDom() {
    const root = document.createElement("div");
    root.className = "dreamdance-pose-editor";
    root.style.cssText =
      "display:flex;flex-direction:column;gap:4px;width:100%;height:100%;font:12px sans-serif;color:#ddd";
    const bar = document.createElement("div");
    bar.style.cssText = "display:flex;flex-wrap:wrap;gap:3px;align-items:center";
    const button = (label, title, action) => {
      const b = document.createElement("button");
      b.textContent = label;
      b.title = title;
      b.dataset.action = title;
      b.style.cssText =
        "padding:1px 6px;background:#333;color:#ddd;border:1px solid #555;border-radius:3px;cursor:pointer";
      b.addEventListener("click", (e) => {
        e.stopPropagation();
        action();
      });
      bar.appendChild(b);
      return b;
    };
    button("◀", "previous frame", () => this.setFrame(this.frame - 1));
    this.label = document.createElement("span");
    this.label.style.cssText = "min-width:70px;text-align:center";
    bar.appendChild(this.label);
    button("▶", "next frame", () => this.setFrame(this.frame + 1));
    this.keyButton = button("◆ key", "mark keyframe", () => this.toggleKey());
    button("+ frame", "duplicate frame", () => this.duplicateFrame());
    button("− frame", "delete frame", () => this.deleteFrame());
    button("+ person", "add person", () => this.addPerson());
    button("− person", "remove person", () => this.removePerson());
    button("show hidden", "show hidden points", () => this.showHidden());
    this.inputButton = button("use input pose", "use input pose", () => this.useInputPose());
    this.slider = document.createElement("input");
    this.slider.type = "range";
    this.slider.min = 0;
    this.slider.style.cssText = "width:100%";
    this.slider.addEventListener("input", () => this.setFrame(Number(this.slider.value)));
    this.message = document.createElement("div");
    this.message.className = "dreamdance-pose-message";
    this.message.style.cssText = "display:none;white-space:pre-wrap;max-height:64px;overflow:auto;padding:2px 4px;" +
      "border-radius:3px;background:#3a2a00;color:#fc6";
    this.canvas = document.createElement("canvas");
    this.canvas.style.cssText =
      "width:100%;flex:1 1 auto;min-height:0;background:#000;touch-action:none;cursor:crosshair";
    this.canvas.addEventListener("pointerdown", (e) => this.onPointerDown(e));
    this.canvas.addEventListener("pointermove", (e) => this.onPointerMove(e));
    this.canvas.addEventListener("pointerup", (e) => this.onPointerUp(e));
    this.canvas.addEventListener("contextmenu", (e) => this.onContextMenu(e));
    new ResizeObserver(() => this.draw()).observe(this.canvas);
    root.append(bar, this.message, this.slider, this.canvas);
    return root;
  }

  refresh() {
    const n = this.frames.length;
    const keys = this.keys();
    this.label.textContent = n ? `${keys.has(this.frame) ? "◆ " : ""}${this.frame + 1} / ${n}` : "no frames";
    this.keyButton.style.background = keys.has(this.frame) ? "#806000" : "#333";
    this.inputButton.disabled = !this.inputPose;
    this.slider.max = Math.max(0, n - 1);
    this.slider.value = this.frame;
    this.showMessage();
    this.draw();
  }

  // The parse error, or the notes on data shown differently from what pose_json holds, above the canvas.
  showMessage() {
    const notes = this.notes ?? [];
    const more = notes.length > MAX_NOTES ? [`… and ${notes.length - MAX_NOTES} more`] : [];
    const lines = this.error ? [this.error] : [...notes.slice(0, MAX_NOTES), ...more];
    this.message.textContent = lines.join("\n");
    this.message.style.display = lines.length ? "block" : "none";
    this.message.style.color = this.error ? "#f88" : "#fc6";
  }

  // ---- geometry -------------------------------------------------------------------------------------------
  transform() {
    const [w, h] = this.canvasSize();
    const cw = this.canvas.width, ch = this.canvas.height;
    const s = Math.min(cw / w, ch / h);
    return { s, ox: (cw - s * w) / 2, oy: (ch - s * h) / 2 };
  }

  toCanvas(x, y) {
    const t = this.transform();
    return [t.ox + x * t.s, t.oy + y * t.s];
  }

  eventPoint(e) {
    const r = this.canvas.getBoundingClientRect();
    const x = ((e.clientX - r.left) * this.canvas.width) / r.width;
    return [x, ((e.clientY - r.top) * this.canvas.height) / r.height];
  }

  // Client (page) coordinates of a body joint of the current frame: used by tests to drag real mouse events.
  jointClientPosition(person, joint) {
    const p = this.people()[person]?.pose_keypoints_2d;
    if (!p) return null;
    const [cx, cy] = this.toCanvas(p[3 * joint], p[3 * joint + 1]);
    const r = this.canvas.getBoundingClientRect();
    return { x: r.left + (cx * r.width) / this.canvas.width, y: r.top + (cy * r.height) / this.canvas.height };
  }

  hit(e) {
    const [px, py] = this.eventPoint(e);
    const scale = this.canvas.width / this.canvas.getBoundingClientRect().width;
    let best = null;
    this.people().forEach((person, p) => {
      for (const part of PARTS) {
        const pts = person[part];
        if (!Array.isArray(pts)) continue;
        for (let i = 0; i < pts.length / 3; i++) {
          if (pts[3 * i] === 0 && pts[3 * i + 1] === 0 && pts[3 * i + 2] === 0) continue;
          const [cx, cy] = this.toCanvas(pts[3 * i], pts[3 * i + 1]);
          const d = Math.hypot(cx - px, cy - py) / scale;
          const bodyBonus = part === "pose_keypoints_2d" ? 0.5 : 0; // prefer body joints when points overlap
          if (d <= HIT_RADIUS && (!best || d - bodyBonus < best.d)) best = { p, part, i, d: d - bodyBonus };
        }
      }
    });
    return best;
  }

  // ---- mouse ----------------------------------------------------------------------------------------------
  onPointerDown(e) {
    if (e.button !== 0) return;
    e.stopPropagation();
    const hit = this.hit(e);
    if (!hit) return;
    this.selectedPerson = hit.p;
    this.drag = hit;
    this.canvas.setPointerCapture?.(e.pointerId);
    this.draw();
  }

  onPointerMove(e) {
    if (!this.drag) return;
    e.stopPropagation();
    const [px, py] = this.eventPoint(e);
    const t = this.transform();
    const pts = this.people()[this.drag.p][this.drag.part];
    pts[3 * this.drag.i] = Math.round(((px - t.ox) / t.s) * 10) / 10;
    pts[3 * this.drag.i + 1] = Math.round(((py - t.oy) / t.s) * 10) / 10;
    this.draw();
  }

  onPointerUp(e) {
    if (!this.drag) return;
    e.stopPropagation();
    this.drag = null;
    this.save();
    this.draw();
  }

  onContextMenu(e) {
    e.preventDefault();
    e.stopPropagation();
    const hit = this.hit(e);
    if (!hit) return;
    const pts = this.people()[hit.p][hit.part];
    pts[3 * hit.i + 2] = pts[3 * hit.i + 2] > 0 ? 0 : 1;
    this.selectedPerson = hit.p;
    this.save();
    this.draw();
  }

  // ---- commands -------------------------------------------------------------------------------------------
  setFrame(i) {
    this.frame = Math.max(0, Math.min(this.frames.length - 1, i));
    this.refresh();
  }

  toggleKey() {
    const keys = this.keys();
    keys.has(this.frame) ? keys.delete(this.frame) : keys.add(this.frame);
    this.setKeys(keys);
    this.refresh();
  }

  duplicateFrame() {
    const [w, h] = this.canvasSize();
    const empty = { people: [], canvas_width: w, canvas_height: h };
    const copy = this.frames.length ? structuredClone(this.frames[this.frame]) : empty;
    this.frames.splice(this.frame + 1, 0, copy);
    this.setKeys([...this.keys()].map((k) => (k > this.frame ? k + 1 : k)));
    this.save();
    this.setFrame(this.frames.length === 1 ? 0 : this.frame + 1);
  }

  deleteFrame() {
    if (this.frames.length <= 1) return;
    this.frames.splice(this.frame, 1);
    this.setKeys([...this.keys()].filter((k) => k !== this.frame).map((k) => (k > this.frame ? k - 1 : k)));
    this.save();
    this.setFrame(this.frame);
  }

  addPerson() {
    if (!this.frames.length) this.duplicateFrame();
    for (const frame of this.frames) {
      const [w, h] = [frame.canvas_width || DEFAULT_CANVAS[0], frame.canvas_height || DEFAULT_CANVAS[1]];
      const size = 0.8 * Math.min(h, 1.25 * w);
      frame.people = Array.isArray(frame.people) ? frame.people : [];
      const shift = (frame.people.length % 5) * 0.15 * w * (frame.people.length % 2 ? 1 : -1);
      const round = (v) => Math.round(v * 10) / 10;
      const body = TEMPLATE.flatMap(([x, y]) => [round(w / 2 + shift + x * size), round(h / 2 + y * size), 1]);
      frame.people.push({ ...Object.fromEntries(PARTS.map((part) => [part, null])), pose_keypoints_2d: body });
    }
    this.selectedPerson = this.people().length - 1;
    this.save();
    this.refresh();
  }

  removePerson() {
    const p = this.selectedPerson;
    for (const frame of this.frames) {
      if (Array.isArray(frame.people) && p < frame.people.length) frame.people.splice(p, 1);
    }
    this.selectedPerson = Math.max(0, p - 1);
    this.save();
    this.refresh();
  }

  showHidden() {
    const person = this.people()[this.selectedPerson];
    if (!person) return;
    for (const part of PARTS) {
      const pts = person[part];
      if (!Array.isArray(pts)) continue;
      for (let i = 0; i < pts.length / 3; i++) if (pts[3 * i] !== 0 || pts[3 * i + 1] !== 0) pts[3 * i + 2] ||= 1;
    }
    this.save();
    this.draw();
  }

  useInputPose() {
    if (!this.inputPose) return;
    ({ frames: this.frames, notes: this.notes } = normaliseFrames(structuredClone(this.inputPose)));
    this.error = null;
    this.save();
    this.setFrame(0);
  }

  // Called with the node's UI output after a run.
  onExecuted(message) {
    const pose = message?.input_pose?.[0];
    if (pose) {
      try {
        this.inputPose = JSON.parse(pose);
      } catch (e) {
        this.inputPose = null; // the node sends JSON it wrote itself; never let a bad message break the editor
      }
      if (!this.frames.length) this.useInputPose();
    }
    const bg = message?.background?.[0];
    if (bg) {
      const { filename, subfolder = "", type = "temp" } = bg;
      const params = new URLSearchParams({ filename, subfolder, type });
      const img = new Image();
      img.onload = () => {
        this.background = img;
        this.draw();
      };
      img.src = api.apiURL(`/view?${params}`);
    }
    this.refresh();
  }

  // ---- drawing --------------------------------------------------------------------------------------------
  draw() {
    const c = this.canvas;
    const width = Math.max(1, Math.round(c.clientWidth)), height = Math.max(1, Math.round(c.clientHeight));
    if (c.width !== width || c.height !== height) [c.width, c.height] = [width, height];
    const ctx = c.getContext("2d");
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, c.width, c.height);
    const [w, h] = this.canvasSize();
    const t = this.transform();
    ctx.fillStyle = "#000";
    ctx.fillRect(t.ox, t.oy, w * t.s, h * t.s);
    if (this.background) ctx.drawImage(this.background, t.ox, t.oy, w * t.s, h * t.s);
    if (this.error) {
      ctx.fillStyle = "#f66";
      ctx.fillText(this.error, 8, 16);
      return;
    }
    this.people().forEach((person, p) => {
      try {
        this.drawPerson(ctx, person, p === this.selectedPerson);
      } catch (e) {
        // data normaliseFrames did not foresee: skip this person, say so, keep the editor alive
        const note = `person ${p + 1} of frame ${this.frame + 1} cannot be drawn: ${e.message}`;
        if (!this.notes.includes(note)) this.notes.push(note);
        this.showMessage();
      }
    });
  }

  drawPerson(ctx, person, selected) {
    const points = (part) => {
      const pts = Array.isArray(person[part]) ? person[part] : [];
      return Array.from({ length: pts.length / 3 }, (_, i) => {
        const [x, y, conf] = [pts[3 * i], pts[3 * i + 1], pts[3 * i + 2]];
        return { at: this.toCanvas(x, y), seen: conf > 0, exists: x !== 0 || y !== 0 || conf !== 0 };
      });
    };
    const dot = (pt, r, color) => {
      ctx.beginPath();
      ctx.arc(pt.at[0], pt.at[1], r, 0, 2 * Math.PI);
      if (pt.seen) {
        ctx.fillStyle = color;
        ctx.fill();
      } else {
        ctx.strokeStyle = "#888"; // hidden point: hollow, still draggable and re-showable
        ctx.stroke();
      }
    };
    const line = (a, b, color, width) => {
      ctx.strokeStyle = color;
      ctx.lineWidth = width;
      ctx.beginPath();
      ctx.moveTo(...a.at);
      ctx.lineTo(...b.at);
      ctx.stroke();
    };
    const body = points("pose_keypoints_2d");
    BODY_BONES.forEach(([a, b], i) => {
      if (body[a]?.seen && body[b]?.seen) line(body[a], body[b], rgb(BODY_COLORS[i], 0.6), 4);
    });
    ctx.lineWidth = 1;
    body.forEach((pt, i) => pt.exists && i < NUM_BODY && dot(pt, selected ? 5 : 4, rgb(BODY_COLORS[i])));
    for (const hand of ["hand_left_keypoints_2d", "hand_right_keypoints_2d"]) {
      const pts = points(hand);
      HAND_EDGES.forEach(([a, b], i) => {
        if (pts[a]?.seen && pts[b]?.seen) line(pts[a], pts[b], `hsl(${(360 * i) / 20},100%,50%)`, 2);
      });
      ctx.lineWidth = 1;
      pts.forEach((pt) => pt.exists && dot(pt, 2.5, "rgb(0,0,255)"));
    }
    points("face_keypoints_2d").forEach((pt) => pt.exists && dot(pt, 1.5, "#fff"));
  }
}

app.registerExtension({
  name: "dreamdance.PoseEditor", // under the pack's namespace, so no other pack's extension can collide with it

  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_TYPE) return;

    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      const state = this.widgets?.find((w) => w.name === "pose_json");
      if (state) {
        state.hidden = true; // the editor below shows and edits it
        state.computeSize = () => [0, -4]; // older frontends ignore `hidden`
        // Nodes 2.0 (Vue nodes) of frontend 1.32.9 skips widgets whose options say hidden (a copy: the options object
        // may be shared with the node definition)
        state.options = { ...(state.options ?? {}), hidden: true };
      }
      this.poseEditor = new PoseEditor(this);
      const widget = this.addDOMWidget("pose_editor", "dreamdance_pose_editor", this.poseEditor.element, {
        serialize: false,
        hideOnZoom: false,
        getMinHeight: () => EDITOR_HEIGHT,
      });
      widget.computeLayoutSize = () => ({ minHeight: EDITOR_HEIGHT, minWidth: 320 });
      for (const name of ["keyframes"]) {
        const w = this.widgets.find((x) => x.name === name);
        const callback = w?.callback;
        if (w) w.callback = (...args) => (callback?.apply(w, args), this.poseEditor.refresh());
      }
      this.setSize([Math.max(this.size[0], 360), Math.max(this.size[1], EDITOR_HEIGHT + 120)]);
      return result;
    };

    const onConfigure = nodeType.prototype.onConfigure;
    nodeType.prototype.onConfigure = function () {
      const result = onConfigure?.apply(this, arguments);
      this.poseEditor?.load(); // widget values restored from a saved / dropped workflow
      return result;
    };

    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      const result = onExecuted?.apply(this, arguments);
      this.poseEditor?.onExecuted(message);
      return result;
    };
  },
});
