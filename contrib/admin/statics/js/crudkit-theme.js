// crudkit: the admin's dark or light theme (Tabler's data-bs-theme). The theme is set
// before the page is drawn (this script runs in <head>): the user's last choice, else the
// system's preference. A button in the sidebar switches it and remembers the choice.
(function () {
  "use strict";
  var KEY = "crudkit-admin-theme";
  var root = document.documentElement;

  function remembered() {
    try {
      return window.localStorage.getItem(KEY);
    } catch (error) {
      return null;
    }
  }

  var saved = remembered();
  var prefersDark = window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches;
  var theme = saved === "dark" || saved === "light" ? saved : prefersDark ? "dark" : "light";
  root.setAttribute("data-bs-theme", theme);

  document.addEventListener("DOMContentLoaded", function () {
    var sidebar = document.querySelector("aside.navbar-vertical .container-fluid");
    if (!sidebar) {
      return;
    }
    var toggle = document.createElement("button");
    toggle.type = "button";
    toggle.id = "crudkit-theme-toggle";
    toggle.className = "btn btn-secondary btn-icon m-2 px-2";
    toggle.title = "Switch between the dark and the light theme";
    toggle.setAttribute("aria-label", toggle.title);
    toggle.innerHTML =
      '<i class="fa-solid fa-moon hide-theme-dark"></i><i class="fa-solid fa-sun hide-theme-light"></i>';
    toggle.addEventListener("click", function () {
      var next = root.getAttribute("data-bs-theme") === "dark" ? "light" : "dark";
      root.setAttribute("data-bs-theme", next);
      try {
        window.localStorage.setItem(KEY, next);
      } catch (error) {
        // private browsing: the choice lasts for this page only
      }
    });
    sidebar.appendChild(toggle);
  });
})();
