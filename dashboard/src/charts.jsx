// Bar charts in plain SVG: enough for cost per day, tokens per model and
// latency, without a chart library's weight. Each chart has a text title
// and a table-like description for screen readers.

export function Bars({ title, data, format = (v) => String(v), height = 160 }) {
  if (!data.length) return <figure class="chart"><figcaption>{title}</figcaption><p class="muted">No data yet.</p></figure>;
  const max = Math.max(...data.map((d) => d.value), 0) || 1;
  const w = 600;
  const gap = 6;
  // Bars at most 60 units wide, so one day or one model is not a wall.
  const bw = Math.min(60, Math.max(4, (w - gap * data.length) / data.length));
  const desc = data.map((d) => `${d.label}: ${format(d.value)}`).join('; ');
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${w} ${height + 34}`} role="img" aria-label={`${title}. ${desc}`}>
        {data.map((d, i) => {
          const h = Math.max(1, (d.value / max) * height);
          const x = i * (bw + gap);
          return (
            <g key={d.label}>
              <rect class="bar" x={x} y={height - h + 14} width={bw} height={h}><title>{`${d.label}: ${format(d.value)}`}</title></rect>
              <text class="value" x={x + bw / 2} y={height - h + 10} text-anchor="middle">{format(d.value)}</text>
              <text class="label" x={x + bw / 2} y={height + 30} text-anchor="middle">{d.label}</text>
            </g>
          );
        })}
      </svg>
    </figure>
  );
}
