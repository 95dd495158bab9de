/* The bar offering to take back the last approval: U or its button, until its time runs out.
 * The server decides whether it still can be; this only counts down and hides the offer. */
"use strict";

(function () {
  const bar = document.getElementById("undo-bar");
  if (!bar) return;
  const left = document.getElementById("undo-left");
  // how long was left when the server sent the page (the browser's clock may differ from it)
  const end = performance.now() + Number(bar.dataset.left);
  function tick() {
    const s = Math.ceil((end - performance.now()) / 1000);
    if (s <= 0) {
      bar.remove();
      return;
    }
    left.textContent = `${s} s`;
    setTimeout(tick, 250);
  }
  tick();
  document.addEventListener("keydown", (ev) => {
    if (ev.key !== "u" && ev.key !== "U") return;
    if (ev.ctrlKey || ev.metaKey || ev.altKey || ev.repeat || !bar.isConnected) return;
    if (document.querySelector("dialog[open]")) return;
    if (ev.target.closest && ev.target.closest("input, textarea, select, [contenteditable]")) return;
    ev.preventDefault();
    bar.requestSubmit();
  });
})();
