// The benchmark reports' SVG line charts: ticks, and points drawn inside their panel's frame.
import t from 'tap';
import { chartSvg, tickText, ticks } from '../../bench/lib/chart.js';

t.test('ticks: 1-2-5 per decade on a log axis (powers of ten alone when many), nice steps on a linear one', async (t) => {
  t.same(ticks(1, 200, true), [1, 2, 5, 10, 20, 50, 100, 200]);
  t.same(ticks(10, 1_000_000, true), [10, 100, 1000, 10_000, 100_000, 1_000_000]);
  t.same(ticks(0, 10, false), [0, 2, 4, 6, 8, 10]);
  t.same(['1', '20', '1.5k', '200k', '1.2M', '0.25'], [1, 20, 1500, 200_000, 1_200_000, 0.25].map(tickText));
});

t.test('a chart draws every finite point inside its panel frame, and a legend entry per series', async (t) => {
  const svg = chartSvg({
    title: 'two panels',
    columns: 2,
    panels: [
      { title: 'rps', xLabel: 'clients', yLabel: 'requests/s', xLog: true, yLog: true, series: [
        { label: 'a', color: '#111', points: [{ x: 1, y: 63 }, { x: 10, y: 240 }, { x: 200, y: 21_930 }] },
        { label: 'b <&>', color: '#222', points: [{ x: 1, y: NaN }, { x: 10, y: 175 }, { x: 200, y: 588 }] },
      ] },
      { title: 'lin', xLabel: 'depth', yLabel: 'ms', series: [{ label: 'a', color: '#111', points: [{ x: 1, y: 2 }, { x: 16, y: 9 }] }], note: 'b: none' },
    ],
  });
  t.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
  t.match(svg, /<\/svg>\n$/);
  t.match(svg, /b &lt;&amp;&gt;/, 'labels are escaped');
  t.notMatch(svg, /NaN|Infinity/);
  const frames = [...svg.matchAll(/<rect x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)" fill="none"/g)].map((m) => m.slice(1).map(Number));
  t.equal(frames.length, 2);
  const circles = [...svg.matchAll(/<circle cx="([\d.]+)" cy="([\d.]+)" r="3.5" fill="[^"]+"><title>/g)].map((m) => [Number(m[1]), Number(m[2])]);
  t.equal(circles.length, 7, 'the NaN point is left out');
  for (const [cx, cy] of circles) {
    t.ok(frames.some(([x, y, w, h]) => cx! > x! && cx! < x! + w! && cy! >= y! && cy! <= y! + h!), `point ${cx},${cy} inside a frame`);
  }
  t.equal([...svg.matchAll(/stroke-width="3"/g)].length, 2, 'one legend entry per series label');
});
