/*! FanGate Link embed: FanGateLink.open({url, onSuccess, onExit, onEvent}) / FanGateLink.close(). No dependencies. */
(function () {
  'use strict';
  var script = document.currentScript;
  // Messages are accepted from FanGate's own origin only: the origin this script was loaded from.
  var ORIGIN = script && script.src ? new URL(script.src, location.href).origin : location.origin;
  var overlay = null, frame = null, options = null, previousFocus = null;

  function onMessage(event) {
    if (!frame || event.origin !== ORIGIN || event.source !== frame.contentWindow) return;
    var data = event.data;
    if (!data || typeof data.type !== 'string') return;
    var opts = options;
    if (data.type === 'fangate.link.success') {
      close();
      if (opts && opts.onSuccess) opts.onSuccess({ connection_id: data.connection_id, client_reference_id: data.client_reference_id });
    } else if (data.type === 'fangate.link.exit') {
      close();
      if (opts && opts.onExit) opts.onExit({ status: data.status, step: data.step, error_code: data.error_code });
    } else if (data.type === 'fangate.link.event') {
      if (data.name === 'close_requested') { dismiss(); return; }
      if (opts && opts.onEvent) opts.onEvent({ name: data.name });
    }
  }

  /** Closed by the person (Escape, the close button): the link stays usable until it expires. */
  function dismiss() {
    var opts = options;
    close();
    if (opts && opts.onExit) opts.onExit({ status: 'cancelled', step: 'closed' });
  }

  function onKey(event) {
    if (event.key === 'Escape') { event.preventDefault(); dismiss(); }
  }

  function layout() {
    if (!frame) return;
    var phone = window.innerWidth < 600;
    frame.style.cssText = phone
      ? 'position:fixed;inset:0;width:100%;height:100%;border:0;background:#fff;'
      : 'position:fixed;top:50%;left:50%;transform:translate(-50%,-50%);width:460px;max-width:calc(100vw - 32px);height:720px;max-height:calc(100vh - 32px);border:0;border-radius:12px;box-shadow:0 8px 40px rgba(0,0,0,.35);background:#fff;';
  }

  function open(opts) {
    if (!opts || typeof opts.url !== 'string') throw new TypeError('FanGateLink.open needs { url } from POST /api/link/init');
    var target = new URL(opts.url, location.href);
    if (target.origin !== ORIGIN) throw new Error('FanGateLink.open: the url must be on ' + ORIGIN + ', where link.js comes from');
    close();
    options = opts;
    previousFocus = document.activeElement;
    overlay = document.createElement('div');
    overlay.setAttribute('data-fangate-link', '');
    overlay.style.cssText = 'position:fixed;inset:0;z-index:2147483647;background:rgba(0,0,0,.55);';
    frame = document.createElement('iframe');
    frame.src = target.href;
    frame.title = 'Connect your account';
    frame.setAttribute('allow', 'clipboard-write');
    frame.setAttribute('referrerpolicy', 'no-referrer');
    layout();
    overlay.appendChild(frame);
    overlay.addEventListener('click', function (event) { if (event.target === overlay) dismiss(); });
    document.body.appendChild(overlay);
    window.addEventListener('message', onMessage);
    window.addEventListener('keydown', onKey);
    window.addEventListener('resize', layout);
    frame.focus();
  }

  function close() {
    window.removeEventListener('message', onMessage);
    window.removeEventListener('keydown', onKey);
    window.removeEventListener('resize', layout);
    if (overlay && overlay.parentNode) overlay.parentNode.removeChild(overlay);
    overlay = null;
    frame = null;
    options = null;
    if (previousFocus && previousFocus.focus) previousFocus.focus();
    previousFocus = null;
  }

  window.FanGateLink = { open: open, close: close };
})();
