// Progressive enhancement only: every page works without this file.
// It adds a Copy button beside each read-only value marked data-copy (DNS
// records, secrets shown once); without it the value is still selectable.
document.querySelectorAll("input[data-copy]").forEach(function (input) {
  if (!navigator.clipboard) return;
  var button = document.createElement("button");
  button.type = "button";
  button.className = "copy";
  button.textContent = "Copy";
  button.setAttribute("aria-label", "Copy " + (input.getAttribute("aria-label") || "the value"));
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(input.value).then(function () {
      button.textContent = "Copied";
      setTimeout(function () { button.textContent = "Copy"; }, 2000);
    });
  });
  input.insertAdjacentElement("afterend", button);
});
