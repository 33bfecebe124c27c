// Passkey ceremonies for forms marked data-webauthn="register|authenticate". The server puts
// the options in data-options; the browser's answer goes back in the hidden "response" field
// and the form is posted normally (same CSRF token and same-origin checks as every form).
(function () {
  'use strict';
  var lib = window.SimpleWebAuthnBrowser;
  var forms = document.querySelectorAll('form[data-webauthn]');
  if (!lib || !lib.browserSupportsWebAuthn()) {
    forms.forEach(function (form) {
      var status = form.querySelector('[data-status]');
      if (form.hidden) return;
      if (status) status.textContent = 'This browser cannot use passkeys. Choose another way below.';
      form.querySelectorAll('button').forEach(function (b) {
        b.disabled = true;
      });
    });
    return;
  }
  forms.forEach(function (form) {
    var mode = form.getAttribute('data-webauthn');
    var field = form.querySelector('input[name="response"]');
    var status = form.querySelector('[data-status]');
    var optionsUrl = form.getAttribute('data-options-url');
    form.hidden = false;

    // Options come inline (data-options) or from a same-origin URL (the login page, the account
    // page), asked for by a POST with the form's token like any form of ours.
    function options() {
      if (!optionsUrl) return Promise.resolve(JSON.parse(form.getAttribute('data-options') || '{}'));
      var token = form.querySelector('input[name="csrf"]');
      return fetch(optionsUrl, {
        method: 'POST',
        credentials: 'same-origin',
        headers: { Accept: 'application/json', 'Content-Type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf: token ? token.value : '' }).toString(),
      }).then(function (r) {
        if (!r.ok) throw new Error('options unavailable');
        return r.json();
      });
    }

    function run(autofill) {
      if (status && !autofill) status.textContent = 'Waiting for your passkey…';
      var ceremony = options().then(function (optionsJSON) {
        return mode === 'register'
          ? lib.startRegistration({ optionsJSON: optionsJSON })
          : lib.startAuthentication({ optionsJSON: optionsJSON, useBrowserAutofill: autofill });
      });
      return ceremony.then(
        function (result) {
          field.value = JSON.stringify(result);
          form.submit();
        },
        function (error) {
          if (autofill || !status) return;
          status.textContent =
            error && error.name === 'NotAllowedError'
              ? 'The passkey request was cancelled or timed out. Try again.'
              : 'The passkey could not be used. Try again or choose another way.';
        },
      );
    }

    form.addEventListener('submit', function (event) {
      if (field.value) return;
      event.preventDefault();
      run(false);
    });
    // Conditional UI: passkeys offered in the email field's autofill where the browser can.
    if (form.getAttribute('data-conditional') === 'true' && lib.browserSupportsWebAuthnAutofill) {
      lib.browserSupportsWebAuthnAutofill().then(function (supported) {
        if (supported) run(true);
      });
    }
  });
})();
