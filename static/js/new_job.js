/* Submit a job (templates/new_job.html): builds POST /queue/new-job/'s body from the form,
   uploads files on the spot through POST /files/, and shows the API's refusal next to the field
   it names (the form is kept); on success it opens the new job's page. */
(function () {
  'use strict';
  const J = window.Jobdeck;
  const form = document.querySelector('form[data-new-job]');
  if (!form) return;
  const typeId = Number(form.dataset.jobTypeId);
  const submit = form.querySelector('button[type="submit"]');
  const state = form.querySelector('[data-submit-state]');

  function fieldError(field, text) {
    const error = field.querySelector('[data-error]');
    error.textContent = text;
    error.hidden = !text;
    const control = field.querySelector('[data-value]');
    if (text) control.setAttribute('aria-invalid', 'true');
    else control.removeAttribute('aria-invalid');
  }

  function clearErrors() {
    for (const field of form.querySelectorAll('[data-input], [data-output]')) fieldError(field, '');
    J.showMessage('', 'error');
  }

  /* The input's job data entry, or null when it is left empty (the API then says whether it
     was required). */
  function inputEntry(field) {
    const name = field.dataset.input;
    const control = field.querySelector('[data-value]');
    if (field.dataset.type === 'property') {
      return control.value === '' ? null : {name: name, value: control.value};
    }
    const ids = Array.from(control.selectedOptions, function (o) { return Number(o.value); })
      .filter(Boolean);
    if (!ids.length) return null;
    return field.dataset.type === 'file' ? {name: name, file_id: ids[0]} : {name: name, file_ids: ids};
  }

  /* The request body, and the fields in the order their entries were sent, for the API's
     `input_data[i]` and `output_data[i]` paths. */
  function jobData() {
    const sent = {input_data: [], output_data: []};
    const inputs = [];
    const outputs = [];
    for (const field of form.querySelectorAll('[data-input]')) {
      const entry = inputEntry(field);
      if (entry) { inputs.push(entry); sent.input_data.push(field); }
    }
    for (const field of form.querySelectorAll('[data-output]')) {
      const workspace = field.querySelector('[data-value]').value;
      if (workspace) {
        outputs.push({name: field.dataset.output, workspace_id: Number(workspace)});
        sent.output_data.push(field);
      }
    }
    return {sent: sent, body: {job_type_id: typeId,
      job_data: {version: '1.0', input_data: inputs, output_data: outputs}}};
  }

  /* The field an API message is about: the entry its path points at, the input or output it
     names, or the outputs sent to the workspace it names; null for the form as a whole. */
  function fieldFor(message, sent) {
    let match = /(input_data|output_data)\[(\d+)\]/.exec(message);
    if (match) return sent[match[1]][Number(match[2])] || null;
    match = /(input|output) "([^"]+)"/.exec(message);
    if (match) {
      return form.querySelector('[data-' + match[1] + '="' + CSS.escape(match[2]) + '"]');
    }
    match = /workspace (\d+) does not exist/.exec(message);
    if (match) {
      return sent.output_data.find(function (field) {
        return field.querySelector('[data-value]').value === match[1];
      }) || null;
    }
    return null;
  }

  form.addEventListener('submit', async function (event) {
    event.preventDefault();
    clearErrors();
    const request = jobData();
    submit.disabled = true;
    state.textContent = 'Submitting…';
    const result = await J.api('POST', '/queue/new-job/', request.body);
    if (result.ok) {
      state.textContent = 'Job ' + result.body.id + ' submitted; opening it…';
      window.location.assign('/dashboard/jobs/' + result.body.id);
      return;
    }
    submit.disabled = false;
    state.textContent = '';
    const field = fieldFor(result.message, request.sent);
    if (field) {
      fieldError(field, result.message);
      field.querySelector('[data-value]').focus();
    } else {
      J.showMessage(result.message, 'error');
    }
  });

  /* Uploads the chosen files into the chosen workspace and selects them in the input's list. */
  async function upload(field, picker) {
    const select = field.querySelector('[data-value]');
    const workspace = form.querySelector('[data-upload-workspace]').value;
    fieldError(field, '');
    for (const file of Array.from(picker.files)) {
      const body = new FormData();
      body.append('workspace_id', workspace);
      body.append('file', file, file.name);
      state.textContent = 'Uploading ' + file.name + '…';
      const result = await J.api('POST', '/files/', body);
      state.textContent = '';
      if (!result.ok) {
        fieldError(field, result.message);
        break;
      }
      const f = result.body;
      const option = new Option(f.file_name + ' (#' + f.id + ', ' + f.media_type + ')', String(f.id));
      select.add(option, select.options[0] && select.options[0].value === '' ? 1 : 0);
      if (!select.multiple) select.value = String(f.id);
      option.selected = true;
    }
    picker.value = '';
  }

  for (const picker of form.querySelectorAll('[data-upload]')) {
    picker.addEventListener('change', function () {
      upload(picker.closest('[data-input]'), picker);
    });
  }
}());
