// The before/after viewer: the result at full resolution under a movable split, with zoom and pan.
//
// The stage is the result's size times the zoom; the photo as uploaded is stretched over the same
// area under it (the browser's own enlargement, the "before"). The split stays where it is on
// screen while the stage scrolls, so zooming into a player and sliding across it works as
// people expect. From 200% on, pixels are drawn as squares so the detail itself is judged.

const MIN_ZOOM = 0.05;
const MAX_ZOOM = 8;
const STEP = 1.5;

export class Viewer {
  constructor(root) {
    this.root = root;
    this.viewport = root.querySelector("#viewport");
    this.stage = root.querySelector("#stage");
    this.before = root.querySelector("#before");
    this.after = root.querySelector("#after");
    this.divider = root.querySelector("#divider");
    this.range = root.querySelector("#split");
    this.zoomLevel = root.querySelector("#zoom-level");
    this.note = root.querySelector("#viewer-note");
    this.width = 1;
    this.height = 1;
    this.zoom = 1;
    this.split = 0.5;
    this.fitting = true;
    this.bind();
  }

  bind() {
    const r = this.root;
    r.querySelector("#zoom-in").addEventListener("click", () => this.setZoom(this.zoom * STEP));
    r.querySelector("#zoom-out").addEventListener("click", () => this.setZoom(this.zoom / STEP));
    r.querySelector("#zoom-fit").addEventListener("click", () => this.fit());
    r.querySelector("#zoom-full").addEventListener("click", () => this.setZoom(1));
    this.range.addEventListener("input", () => {
      this.split = Number(this.range.value) / 100;
      this.update();
    });
    this.viewport.addEventListener("scroll", () => this.update(), { passive: true });
    window.addEventListener("resize", () => (this.fitting ? this.fit() : this.update()));

    // Ctrl + wheel (and a trackpad pinch, which browsers report the same way) zooms at the pointer.
    this.viewport.addEventListener(
      "wheel",
      (event) => {
        if (!event.ctrlKey) return;
        event.preventDefault();
        this.setZoom(this.zoom * Math.exp(-event.deltaY * 0.002), event.clientX, event.clientY);
      },
      { passive: false },
    );
    this.viewport.addEventListener("keydown", (event) => {
      const actions = {
        "+": () => this.setZoom(this.zoom * STEP),
        "=": () => this.setZoom(this.zoom * STEP),
        "-": () => this.setZoom(this.zoom / STEP),
        f: () => this.fit(),
        1: () => this.setZoom(1),
      };
      const action = actions[event.key];
      if (action) {
        event.preventDefault();
        action();
      }
    });

    // Drag the divider to move the split; drag anywhere else (with a mouse) to pan. Touch pans natively.
    this.divider.addEventListener("pointerdown", (event) => {
      event.preventDefault();
      event.stopPropagation();
      this.divider.setPointerCapture(event.pointerId);
      const move = (e) => this.splitAt(e.clientX);
      const up = () => {
        this.divider.removeEventListener("pointermove", move);
        this.divider.removeEventListener("pointerup", up);
        this.divider.removeEventListener("pointercancel", up);
      };
      this.divider.addEventListener("pointermove", move);
      this.divider.addEventListener("pointerup", up);
      this.divider.addEventListener("pointercancel", up);
    });
    this.viewport.addEventListener("pointerdown", (event) => {
      if (event.pointerType !== "mouse" || event.button !== 0) return;
      const start = { x: event.clientX, y: event.clientY, left: this.viewport.scrollLeft, top: this.viewport.scrollTop };
      this.viewport.setPointerCapture(event.pointerId);
      this.viewport.classList.add("panning");
      const move = (e) => {
        this.viewport.scrollLeft = start.left - (e.clientX - start.x);
        this.viewport.scrollTop = start.top - (e.clientY - start.y);
      };
      const up = () => {
        this.viewport.classList.remove("panning");
        this.viewport.removeEventListener("pointermove", move);
        this.viewport.removeEventListener("pointerup", up);
      };
      this.viewport.addEventListener("pointermove", move);
      this.viewport.addEventListener("pointerup", up);
    });
    for (const image of [this.before, this.after]) {
      image.addEventListener("error", () => {
        if (!image.getAttribute("src")) return;
        this.note.textContent = "This browser cannot show this image format; download the result to compare.";
        this.note.hidden = false;
      });
    }
  }

  // Show a result: width x height are the result's pixels.
  open({ name, beforeUrl, afterUrl, width, height }) {
    this.root.hidden = false;
    this.root.querySelector("#viewer-name").textContent = name;
    this.note.hidden = true;
    this.width = width;
    this.height = height;
    this.viewport.style.aspectRatio = `${width} / ${height}`;
    this.before.src = beforeUrl;
    this.after.src = afterUrl;
    this.split = 0.5;
    this.range.value = 50;
    this.fit();
  }

  fit() {
    const zoom = Math.min(this.viewport.clientWidth / this.width, this.viewport.clientHeight / this.height);
    this.setZoom(zoom);
    this.fitting = true;
  }

  // anchorX/anchorY: a point on screen that stays over the same image pixel (default: the centre).
  setZoom(zoom, anchorX, anchorY) {
    const vp = this.viewport;
    const box = vp.getBoundingClientRect();
    const ax = anchorX === undefined ? vp.clientWidth / 2 : anchorX - box.left;
    const ay = anchorY === undefined ? vp.clientHeight / 2 : anchorY - box.top;
    const imageX = (vp.scrollLeft + ax - this.stageOffset()) / this.zoom;
    const imageY = (vp.scrollTop + ay) / this.zoom;
    this.zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, zoom));
    this.fitting = false;
    this.stage.style.width = `${Math.round(this.width * this.zoom)}px`;
    this.stage.style.height = `${Math.round(this.height * this.zoom)}px`;
    this.stage.classList.toggle("pixels", this.zoom >= 2);
    vp.scrollLeft = imageX * this.zoom - ax;
    vp.scrollTop = imageY * this.zoom - ay;
    this.zoomLevel.textContent = `${Math.round(this.zoom * 100)}%`;
    this.update();
  }

  // Where the stage starts inside the viewport when it is narrower and centred.
  stageOffset() {
    return Math.max(0, (this.viewport.clientWidth - this.stage.offsetWidth) / 2);
  }

  // The part of the stage on screen, in stage pixels.
  visibleSpan() {
    const stageWidth = this.stage.offsetWidth;
    const left = Math.min(this.viewport.scrollLeft, stageWidth);
    return [left, Math.min(stageWidth - left, this.viewport.clientWidth)];
  }

  splitAt(clientX) {
    const [left, width] = this.visibleSpan();
    const x = clientX - this.viewport.getBoundingClientRect().left - this.stageOffset() + this.viewport.scrollLeft;
    this.split = Math.min(1, Math.max(0, (x - left) / Math.max(width, 1)));
    this.range.value = Math.round(this.split * 100);
    this.update();
  }

  update() {
    const [left, width] = this.visibleSpan();
    const x = left + this.split * width;
    this.after.style.clipPath = `inset(0 0 0 ${x}px)`;
    this.divider.style.left = `${x}px`;
  }
}
