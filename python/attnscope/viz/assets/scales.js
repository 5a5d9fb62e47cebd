/* attnscope colour scales, shared by every page's scripts (views.js, corpus.js): page() puts this script in the
   document's head, before any view or report section runs. */
(function () {
  "use strict";
  // Symmetric diverging scale: max |score| is full colour, positive red, negative blue, zero white.
  function diverging(v, maxAbs) {
    var a = maxAbs > 0 ? Math.min(1, Math.abs(v) / maxAbs) : 0;
    var end = v >= 0 ? [220, 40, 40] : [40, 90, 230];
    var mix = function (c) { return Math.round(255 + (c - 255) * a); };
    return "rgb(" + mix(end[0]) + "," + mix(end[1]) + "," + mix(end[2]) + ")";
  }
  // Sequential scale: 0 white, maxV full blue.
  function sequential(v, maxV) {
    var a = maxV > 0 ? Math.min(1, v / maxV) : 0;
    var c = Math.round(255 * (1 - a));
    return "rgb(" + c + "," + c + ",255)";
  }
  window.attnscopeScales = { diverging: diverging, sequential: sequential };
})();
