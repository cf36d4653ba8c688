// One definition version, as YAML with highlighting.
import { html } from '../lib.js';
import { path } from '../router.js';
import { Page, useApi, Loading, ErrorBox, has, useSession, Copy } from '../ui.js';
import { toYAML, Highlighted } from '../yaml.js';

export default function Definition({ params }) {
  const sess = useSession();
  const { name, version } = params;
  const { data, error, loading } = useApi(`/v1/definitions/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`);
  const yaml = data ? toYAML(data) : '';
  return html`
    <${Page} title=${`${name} v${data ? data.version : version}`} actions=${html`
      ${data && has(sess, 'submitter') ? html`<a class="button primary" href=${path.submit(name, data.version)}>Start a run</a>` : null}
      ${data && has(sess, 'admin') ? html`<a class="button" href=${path.publish(name, data.version)}>Publish a new version</a>` : null}
      ${data ? html`<${Copy} text=${yaml} label="Copy YAML" />` : null}`}>
      <p><a href=${path.definitions()}>All definitions</a> · <a href=${path.workflows() + '?definition=' + encodeURIComponent(name)}>Runs of ${name}</a></p>
      <${ErrorBox} error=${error} />
      ${loading && !data ? html`<${Loading} />` : null}
      ${data && data.description ? html`<p>${data.description}</p>` : null}
      ${data ? html`<${Highlighted} text=${yaml} label=${`Definition ${name} version ${version} in YAML`} />` : null}
    <//>`;
}
