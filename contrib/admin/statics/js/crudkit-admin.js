// crudkit: sends the session's CSRF token with every state-changing request the admin
// pages make, and logs out with a POST. See contrib/admin/csrf.py.
(function () {
  "use strict";
  var tokenMeta = document.querySelector('meta[name="csrf-token"]');
  if (!tokenMeta) {
    return;
  }
  var token = tokenMeta.getAttribute("content");
  var HEADER = "X-CSRF-Token";
  var SAFE = /^(GET|HEAD|OPTIONS|TRACE)$/i;

  function sameOrigin(url) {
    return new URL(url, window.location.href).origin === window.location.origin;
  }

  // jQuery requests: the delete dialog.
  if (window.jQuery) {
    window.jQuery.ajaxPrefilter(function (options, original, xhr) {
      if (!SAFE.test(options.type || "GET") && sameOrigin(options.url)) {
        xhr.setRequestHeader(HEADER, token);
      }
    });
    // sqladmin points the delete dialog's button at its URL once the dialog has finished
    // opening, and for a bulk delete only if its own click handler ran first; a click
    // during the animation sent DELETE to the wrong URL. Point it as soon as the dialog
    // starts to open: a row's own URL, or the bulk URL with the rows ticked.
    var $ = window.jQuery;
    $(document).on("show.bs.modal", "#modal-delete", function (event) {
      var trigger = $(event.relatedTarget || "#action-delete");
      var url = trigger.attr("data-url");
      if (trigger.attr("id") === "action-delete" && url) {
        var pks = $(".select-box:checked")
          .map(function () {
            return $(this).siblings("input[type=hidden]").val();
          })
          .get();
        url += "?pks=" + pks.map(encodeURIComponent).join(",");
      }
      if (url) {
        $("#modal-delete-button").attr("data-url", url);
      }
    });
  }

  // fetch requests: the CSV import.
  var nativeFetch = window.fetch;
  if (nativeFetch) {
    window.fetch = function (input, init) {
      init = init || {};
      var method = init.method || (input instanceof Request ? input.method : "GET");
      var url = input instanceof Request ? input.url : String(input);
      if (!SAFE.test(method) && sameOrigin(url)) {
        var headers = new Headers(init.headers || (input instanceof Request ? input.headers : {}));
        headers.set(HEADER, token);
        init = Object.assign({}, init, { headers: headers });
      }
      return nativeFetch.call(this, input, init);
    };
  }

  function postTo(url) {
    var form = document.createElement("form");
    form.method = "POST";
    form.action = url;
    var field = document.createElement("input");
    field.type = "hidden";
    field.name = "csrf_token";
    field.value = token;
    form.appendChild(field);
    document.body.appendChild(form);
    form.submit();
  }

  // The sidebar's logout link: log out at once, with a POST.
  var logoutMeta = document.querySelector('meta[name="crudkit-logout-url"]');
  if (logoutMeta) {
    var logoutUrl = new URL(logoutMeta.getAttribute("content"), window.location.href).href;
    document.querySelectorAll("a[href]").forEach(function (link) {
      if (link.href === logoutUrl) {
        link.addEventListener("click", function (event) {
          event.preventDefault();
          postTo(logoutUrl);
        });
      }
    });
  }
})();
