// The samples browser of reports/samples.html (redi.report.browser): plain JavaScript, no library.
const D = JSON.parse(document.getElementById('data').textContent);
const $ = id => document.getElementById(id);
const esc = s => String(s).replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
const uniq = xs => [...new Set(xs)];
function fill(sel, values, keep) {
  const old = sel.value; sel.innerHTML = values.map(v => `<option>${esc(v)}</option>`).join('');
  if (keep && values.includes(old)) sel.value = old;
}
function current() {
  return D.evals.find(e => e.run === $('run').value && e.ckpt === $('ckpt').value && e.bench === $('bench').value);
}
function sampleHtml(s) {
  return `<div class="sample ${s[3]}">#${s[0]} [${s[3].replace('_', ' ')}, ${s[4]} tokens, answer: ${esc(s[2])}]\n${esc(s[1])}</div>`;
}
function render() {
  const e = current(); const kind = $('kind').value; const q = $('search').value.toLowerCase();
  if (!e) { $('list').innerHTML = '<p>No evaluation selected.</p>'; return; }
  const probs = D.problems[e.bench] || {};
  let shown = 0, html = '';
  for (const [pid, samples] of Object.entries(e.rows)) {
    const keep = samples.filter(s => kind === 'all' || s[3] === kind);
    const text = (probs[pid] || ['', ''])[0];
    if (!keep.length || (q && !pid.includes(q) && !text.toLowerCase().includes(q))) continue;
    shown += 1;
    if (shown > 200) continue;
    html += `<div class=problem data-pid="${esc(pid)}"><h4>${esc(pid)}: ${esc(text)} (gold: ${esc((probs[pid] || ['', '?'])[1])})</h4>` +
            keep.map(sampleHtml).join('') + '</div>';
  }
  const pass = e.pass1 == null ? 'n/a' : (100 * e.pass1).toFixed(1) + '%';
  $('summary').innerHTML = `<p class=note>${esc(e.run)}/${esc(e.ckpt)} (step ${e.step}) on ${esc(e.bench)}: pass@1 ${pass} over ${e.n_samples} samples per problem; ${shown} problems match` + (shown > 200 ? ' (first 200 shown)' : '') + '.</p>';
  $('list').innerHTML = html;
  for (const div of document.querySelectorAll('.problem')) div.onclick = () => compare(div.dataset.pid, e.bench);
}
function compare(pid, bench) {
  const probs = D.problems[bench] || {};
  const cols = D.evals.filter(e => e.bench === bench && e.rows[pid] && (e.reported || e.run === $('run').value));
  $('compare').innerHTML = `<h3>${esc(pid)} across runs: ${esc((probs[pid] || [''])[0])}</h3><table><tr>` +
    cols.map(e => `<th>${esc(e.run)}/${esc(e.ckpt)}</th>`).join('') + '</tr><tr>' +
    cols.map(e => '<td>' + e.rows[pid].map(sampleHtml).join('') + '</td>').join('') + '</tr></table>';
  $('compare').scrollIntoView();
}
function sync(level) {
  if (level <= 0) fill($('ckpt'), uniq(D.evals.filter(e => e.run === $('run').value).map(e => e.ckpt)), true);
  if (level <= 1) fill($('bench'), uniq(D.evals.filter(e => e.run === $('run').value && e.ckpt === $('ckpt').value).map(e => e.bench)), true);
  render();
}
fill($('run'), uniq(D.evals.map(e => e.run)), false);
$('run').onchange = () => sync(0); $('ckpt').onchange = () => sync(1); $('bench').onchange = () => sync(2);
$('kind').onchange = render; $('search').oninput = render;
sync(0);
if (D.notes.length) $('summary').insertAdjacentHTML('afterend', '<p class=note>' + D.notes.map(esc).join('; ') + '</p>');
