// The total-loss chart of a job: a canvas as wide as its box (never wider than a phone), with a
// text alternative that says what the line shows.

const PAD = 30;

export class LossChart {
  constructor(canvas, caption) {
    this.canvas = canvas;
    this.caption = caption;
    this.points = [];  // [iteration, total loss], by iteration
    new ResizeObserver(() => this.draw()).observe(canvas.parentElement);
  }

  reset() {
    this.points = [];
    this.draw();
  }

  /** Add one point (ignored when its iteration is known); the points stay ordered by iteration. */
  add(iteration, loss) {
    if (loss == null || !Number.isFinite(loss) || this.points.some(([known]) => known === iteration)) return;
    this.points.push([iteration, loss]);
    this.points.sort((a, b) => a[0] - b[0]);
    this.draw();
  }

  describe() {
    const points = this.points;
    if (!points.length) return "total loss: no values yet";
    const [first, last] = [points[0], points[points.length - 1]];
    if (points.length === 1) return `total loss ${last[1].toPrecision(3)} at iteration ${last[0]}`;
    return `total loss, log scale: from ${first[1].toPrecision(3)} at iteration ${first[0]} ` +
      `to ${last[1].toPrecision(3)} at iteration ${last[0]} (${points.length} values)`;
  }

  draw() {
    const canvas = this.canvas;
    const text = this.describe();
    canvas.setAttribute("aria-label", text);
    this.caption.textContent = text;
    const ratio = window.devicePixelRatio || 1;
    const cssWidth = Math.max(120, Math.floor(canvas.parentElement.clientWidth));
    const cssHeight = 180;
    if (canvas.width !== cssWidth * ratio) { canvas.width = cssWidth * ratio; canvas.height = cssHeight * ratio; }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    const [width, height] = [cssWidth, cssHeight];
    ctx.clearRect(0, 0, width, height);
    ctx.strokeStyle = "#e2e4ea";
    ctx.strokeRect(PAD, 8, width - PAD - 8, height - PAD - 8);
    const points = this.points;
    if (points.length < 2) return;
    // Log scale: Gatys losses fall by orders of magnitude in the first iterations.
    const xs = points.map((p) => p[0]), ys = points.map((p) => Math.log10(Math.max(p[1], 1e-12)));
    const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
    const sx = (x) => PAD + (x - x0) / ((x1 - x0) || 1) * (width - PAD - 8);
    const sy = (y) => 8 + (1 - (y - y0) / ((y1 - y0) || 1)) * (height - PAD - 8);
    ctx.strokeStyle = "#c2410c";
    ctx.lineWidth = 2;
    ctx.beginPath();
    points.forEach((_, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, sx(xs[i]), sy(ys[i])));
    ctx.stroke();
    ctx.fillStyle = "#6b7080";
    ctx.font = "11px system-ui";
    ctx.fillText(points[0][1].toPrecision(3), 2, 18);
    ctx.fillText(points[points.length - 1][1].toPrecision(3), 2, height - PAD);
    ctx.fillText(`it ${x0}`, PAD, height - 8);
    ctx.textAlign = "right";
    ctx.fillText(`it ${x1}`, width - 8, height - 8);
    ctx.textAlign = "left";
  }
}
