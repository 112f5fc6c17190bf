// Line charts as hand-written SVG (no dependencies) for the benchmark reports: panels in a grid,
// each with axes, ticks, labels and optional log scales, one legend for the series of all panels.

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  label: string;
  color: string;
  /** Points with a non-finite y are left out (the line breaks there). */
  points: Point[];
}

export interface Panel {
  title: string;
  xLabel: string;
  yLabel: string;
  xLog?: boolean;
  yLog?: boolean;
  series: Series[];
  /** A line under the panel (what a missing series means, say). */
  note?: string;
}

const PANEL_WIDTH = 460;
const PANEL_HEIGHT = 300;
const MARGIN = { left: 72, right: 16, top: 34, bottom: 58 };
const LEGEND_ROW_HEIGHT = 18;
const TITLE_HEIGHT = 34;
/** Points stay this far inside the frame, so none sits on it. */
const INSET = 14;
/** A log axis with more 1-2-5 ticks than this shows only the powers of ten. */
const LOG_TICKS_MAX = 8;

const escapeXml = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** Short tick text: 1.5k, 20k, 1.2M, 0.25. */
export function tickText(v: number): string {
  const abs = Math.abs(v);
  const trim = (n: number): string => String(Number(n.toPrecision(3)));
  if (abs >= 1e6) return `${trim(v / 1e6)}M`;
  if (abs >= 1e3) return `${trim(v / 1e3)}k`;
  return trim(v);
}

/** Tick values over [min, max]: 1-2-5 steps per decade on a log scale, about five nice steps on a linear one. */
export function ticks(min: number, max: number, log: boolean): number[] {
  if (log) {
    const out: number[] = [];
    for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
      for (const m of [1, 2, 5]) {
        const v = m * 10 ** e;
        if (v >= min * 0.999 && v <= max * 1.001) out.push(v);
      }
    }
    if (out.length > LOG_TICKS_MAX) return out.filter((v) => Number.isInteger(Math.log10(v)) || v === out[0] || v === out[out.length - 1]);
    return out.length >= 2 ? out : [min, max];
  }
  const raw = (max - min) / 5;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

interface Scale {
  at(v: number): number;
  min: number;
  max: number;
}

function scale(values: number[], log: boolean, from: number, to: number, padToZero: boolean): Scale {
  const finite = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  let min = finite.length > 0 ? Math.min(...finite) : 1;
  let max = finite.length > 0 ? Math.max(...finite) : 10;
  if (log) {
    // Whole 1-2-5 steps around the data, so the ends carry ticks.
    min = [1, 2, 5].map((m) => m * 10 ** Math.floor(Math.log10(min))).filter((v) => v <= min).pop()!;
    max = [1, 2, 5, 10].map((m) => m * 10 ** Math.floor(Math.log10(max))).find((v) => v >= max)!;
    if (min === max) max = min * 10;
  } else {
    if (padToZero) min = Math.min(0, min);
    if (min === max) max = min + 1;
    const t = ticks(min, max, false);
    max = Math.max(max, t[t.length - 1]!);
  }
  const f = (v: number): number => (log ? Math.log10(v) : v);
  return { min, max, at: (v) => from + ((f(v) - f(min)) / (f(max) - f(min))) * (to - from) };
}

function panelSvg(panel: Panel, ox: number, oy: number): string[] {
  const x0 = ox + MARGIN.left;
  const x1 = ox + PANEL_WIDTH - MARGIN.right;
  const y0 = oy + PANEL_HEIGHT - MARGIN.bottom;
  const y1 = oy + MARGIN.top;
  const points = panel.series.flatMap((s) => s.points.filter((p) => Number.isFinite(p.y)));
  const xs = scale(points.map((p) => p.x), panel.xLog === true, x0 + INSET, x1 - INSET, false);
  const ys = scale(points.map((p) => p.y), panel.yLog === true, y0, y1, true);
  const out: string[] = [
    `<text x="${ox + PANEL_WIDTH / 2}" y="${oy + 20}" text-anchor="middle" font-weight="bold">${escapeXml(panel.title)}</text>`,
    `<rect x="${x0}" y="${y1}" width="${x1 - x0}" height="${y0 - y1}" fill="none" stroke="#444"/>`,
  ];
  const xTicks = [...new Set(points.map((p) => p.x))].sort((a, b) => a - b);
  for (const v of xTicks) {
    const x = xs.at(v).toFixed(1);
    out.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y1}" stroke="#ddd"/>`, `<text x="${x}" y="${y0 + 16}" text-anchor="middle">${tickText(v)}</text>`);
  }
  for (const v of ticks(ys.min, ys.max, panel.yLog === true)) {
    const y = ys.at(v).toFixed(1);
    out.push(`<line x1="${x0}" y1="${y}" x2="${x1}" y2="${y}" stroke="#ddd"/>`, `<text x="${x0 - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${tickText(v)}</text>`);
  }
  const xAxis = `${panel.xLabel}${panel.xLog === true ? ' (log scale)' : ''}`;
  const yAxis = `${panel.yLabel}${panel.yLog === true ? ' (log scale)' : ''}`;
  out.push(
    `<text x="${(x0 + x1) / 2}" y="${y0 + 36}" text-anchor="middle">${escapeXml(xAxis)}</text>`,
    `<text transform="translate(${ox + 16} ${(y0 + y1) / 2}) rotate(-90)" text-anchor="middle">${escapeXml(yAxis)}</text>`,
  );
  if (panel.note !== undefined) out.push(`<text x="${(x0 + x1) / 2}" y="${y0 + 52}" text-anchor="middle" font-size="11" fill="#666">${escapeXml(panel.note)}</text>`);
  for (const s of panel.series) {
    const drawn = s.points.filter((p) => Number.isFinite(p.y) && (panel.yLog !== true || p.y > 0));
    if (drawn.length === 0) continue;
    const path = drawn.map((p, i) => `${i === 0 ? 'M' : 'L'}${xs.at(p.x).toFixed(1)},${ys.at(p.y).toFixed(1)}`).join(' ');
    out.push(`<path d="${path}" fill="none" stroke="${s.color}" stroke-width="2"/>`);
    for (const p of drawn) {
      out.push(`<circle cx="${xs.at(p.x).toFixed(1)}" cy="${ys.at(p.y).toFixed(1)}" r="3.5" fill="${s.color}"><title>${escapeXml(`${s.label}: ${tickText(p.x)} → ${tickText(p.y)}`)}</title></circle>`);
    }
  }
  return out;
}

/** An SVG document: a title, a legend of every series label, and the panels `columns` to a row. */
export function chartSvg(options: { title: string; panels: Panel[]; columns: number }): string {
  const rows = Math.ceil(options.panels.length / options.columns);
  const width = PANEL_WIDTH * options.columns;
  const legend = new Map<string, string>();
  for (const p of options.panels) for (const s of p.series) legend.set(s.label, s.color);
  const legendHeight = LEGEND_ROW_HEIGHT * legend.size + 8;
  const height = TITLE_HEIGHT + legendHeight + PANEL_HEIGHT * rows;
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="16" font-weight="bold">${escapeXml(options.title)}</text>`,
  ];
  // One legend row per series, centred as a block: labels are long, and a row of them would not fit.
  const lx = width / 2 - 160;
  [...legend].forEach(([label, color], i) => {
    const y = TITLE_HEIGHT + LEGEND_ROW_HEIGHT * i + 8;
    out.push(`<line x1="${lx}" y1="${y}" x2="${lx + 28}" y2="${y}" stroke="${color}" stroke-width="3"/>`,
      `<circle cx="${lx + 14}" cy="${y}" r="3.5" fill="${color}"/>`,
      `<text x="${lx + 36}" y="${y}" dominant-baseline="middle">${escapeXml(label)}</text>`);
  });
  options.panels.forEach((panel, i) => {
    out.push(...panelSvg(panel, (i % options.columns) * PANEL_WIDTH, TITLE_HEIGHT + legendHeight + Math.floor(i / options.columns) * PANEL_HEIGHT));
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}
