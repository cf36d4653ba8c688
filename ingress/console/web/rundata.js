// A run's data: status and input, kept current from its event stream.
import { useState, useEffect, useRef } from './lib.js';
import { api, eventsURL } from './api.js';

/** useRun loads a run's status and input and follows its event stream
 *  while it runs; `live` says whether the stream is connected. */
export function useRun(id) {
  const [status, setStatus] = useState(null);
  const [input, setInput] = useState(null);
  const [error, setError] = useState(null);
  const [live, setLive] = useState(false);
  const [, tick] = useState(0);
  const seq = useRef(-1);

  const apply = (st) => {
    if (st.seq < seq.current && st.state === 'running') return; // an older status
    seq.current = st.seq;
    setStatus(st);
  };

  useEffect(() => {
    let closed = false;
    let es = null;
    let retry = null;
    const connect = () => {
      if (closed) return;
      es = new EventSource(eventsURL(id));
      es.addEventListener('open', () => setLive(true));
      es.addEventListener('status', (e) => { try { apply(JSON.parse(e.data)); } catch { /* ignore */ } });
      es.addEventListener('error', (e) => {
        // An `event: error` from the server carries an API error that did
        // not end the stream; a transport error has no data.
        if (e.data) { try { setError(JSON.parse(e.data).error); } catch { /* ignore */ } return; }
        setLive(false);
        if (es.readyState === EventSource.CLOSED) { es.close(); retry = setTimeout(connect, 3000); }
      });
      es.addEventListener('end', () => { setLive(false); es.close(); refresh(); });
      es.addEventListener('shutdown', () => { setLive(false); es.close(); retry = setTimeout(connect, 1000); });
    };
    const refresh = () => api('/v1/workflows/' + encodeURIComponent(id)).then(apply, setError);
    api('/v1/workflows/' + encodeURIComponent(id)).then((st) => {
      apply(st);
      if (st.state === 'running') connect();
    }, setError);
    api('/v1/workflows/' + encodeURIComponent(id) + '/input').then(setInput, () => setInput({}));
    const t = setInterval(() => { if (!document.hidden) tick((x) => x + 1); }, 1000);
    return () => { closed = true; clearInterval(t); clearTimeout(retry); if (es) es.close(); };
  }, [id]);

  return { status, input, error, live, reload: () => api('/v1/workflows/' + encodeURIComponent(id)).then(apply, setError) };
}
