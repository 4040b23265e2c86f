// crudkit: sends the session's CSRF token with every state-changing request the admin
// pages make, and logs out and runs admin actions with a POST. See contrib/admin/csrf.py.
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

  // Admin actions (contrib/admin/actions.py) change rows: sqladmin's links to them (a
  // details page's buttons, the list's Actions menu, their confirmations) would GET
  // them, so they are posted with the token instead, on the chosen row or rows.
  var actionUrls = Array.prototype.map.call(
    document.querySelectorAll('meta[name="crudkit-action-url"]'),
    function (meta) {
      return new URL(meta.getAttribute("content"), window.location.href);
    }
  );

  function actionTarget(link) {
    var raw = link.getAttribute("data-url") || link.getAttribute("href");
    if (!raw || raw.charAt(0) === "#") {
      return null;
    }
    var url = new URL(raw, window.location.href);
    for (var i = 0; i < actionUrls.length; i++) {
      if (url.origin === actionUrls[i].origin && url.pathname === actionUrls[i].pathname) {
        return url;
      }
    }
    return null;
  }

  if (actionUrls.length) {
    // Capturing, so it runs before sqladmin's own handlers, which navigate with a GET.
    document.addEventListener(
      "click",
      function (event) {
        var link = event.target instanceof Element ? event.target.closest("a") : null;
        var url = link ? actionTarget(link) : null;
        if (!url) {
          return;
        }
        event.preventDefault();
        event.stopPropagation();
        if (!url.searchParams.has("pks")) {
          var pks = Array.prototype.map.call(
            document.querySelectorAll(".select-box:checked"),
            function (box) {
              var key = box.parentElement.querySelector("input[type=hidden]");
              return key ? key.value : "";
            }
          );
          url.searchParams.set("pks", pks.join(","));
        }
        postTo(url.href);
      },
      true
    );
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

// Date-times (contrib/admin/options.py `local_time`) come as <time> elements in UTC, to the
// second; show them in the browser's locale and time zone, the UTC value as a tooltip.
(function () {
  "use strict";
  if (!window.Intl || !Intl.DateTimeFormat) {
    return;
  }
  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    timeZoneName: "short",
  });
  document.querySelectorAll("time[data-crudkit-time][datetime]").forEach(function (element) {
    var when = new Date(element.getAttribute("datetime"));
    if (isNaN(when.getTime())) {
      return;
    }
    element.title = element.textContent;
    element.textContent = format.format(when);
  });
})();

// A list's first three columns (selection, row links, first field) stay in view while a
// wide table scrolls (statics/css/crudkit-admin.css): each is pinned where the ones before
// it end, measured here since their widths depend on the rows.
(function () {
  "use strict";
  var PINNED = 3;

  function pin() {
    document.querySelectorAll(".table-responsive > table").forEach(function (table) {
      var head = table.tHead && table.tHead.rows[0];
      if (!head || !table.querySelector("#select-all") || head.cells.length <= PINNED) {
        return;
      }
      var left = 0;
      for (var i = 0; i < PINNED; i++) {
        table.style.setProperty("--crudkit-pin-" + (i + 1), left + "px");
        left += head.cells[i].getBoundingClientRect().width;
      }
      table.classList.add("crudkit-pinned");
    });
  }

  pin();
  window.addEventListener("resize", pin);
})();
