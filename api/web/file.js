// The download page's copy buttons: each copies the text of the element
// its data-copy attribute names.
'use strict';

document.addEventListener('DOMContentLoaded', () => {
  for (const b of document.querySelectorAll('button[data-copy]')) {
    b.addEventListener('click', async () => {
      const text = document.getElementById(b.dataset.copy).textContent;
      const label = b.textContent;
      try {
        await navigator.clipboard.writeText(text);
        b.textContent = 'Copied';
      } catch {
        const r = document.createRange();
        r.selectNodeContents(document.getElementById(b.dataset.copy));
        getSelection().removeAllRanges();
        getSelection().addRange(r);
        b.textContent = 'Selected: press Ctrl+C';
      }
      setTimeout(() => { b.textContent = label; }, 2000);
    });
  }
});
