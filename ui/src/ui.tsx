import type { ComponentChildren } from 'preact';
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, errorText } from './api.js';

/**
 * Small pieces every page uses. Everything the server or a user wrote is rendered as a text
 * child (Preact escapes it); no page sets HTML from a string.
 */

export function ErrorNote({ error }: { error: unknown }) {
  if (error === undefined || error === null) return null;
  const code = error instanceof ApiError ? error.code : undefined;
  return (
    <p class="error" role="alert">
      {code ? <span class="code">{code}</span> : null} {errorText(error)}
    </p>
  );
}

/** A point in time as the server sent it (UTC), with a readable local form beside it. */
export function When({ at }: { at: string | null | undefined }) {
  if (!at) return <span class="muted">—</span>;
  return (
    <time dateTime={at} title={at}>
      {new Date(at).toLocaleString()}
    </time>
  );
}

export interface Loaded<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => void;
}

/** Loads `load()` now and on every change of `deps`; a later load wins over an earlier one. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data: T | undefined; error: unknown; loading: boolean }>({
    data: undefined,
    error: undefined,
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const run = useRef(0);
  useEffect(() => {
    const id = ++run.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => id === run.current && setState({ data, error: undefined, loading: false }),
      (error: unknown) => id === run.current && setState({ data: undefined, error, loading: false }),
    );
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/**
 * A modal confirmation. With `typed`, the confirm button stays disabled until that exact text
 * is typed (destroying versions, promoting a replica): a slip of the hand cannot do it.
 */
export function Confirm(props: {
  title: string;
  children: ComponentChildren;
  typed?: string;
  action: string;
  onConfirm: () => void;
  onCancel: () => void;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  const [text, setText] = useState('');
  useEffect(() => {
    ref.current?.showModal();
  }, []);
  const ok = props.typed === undefined || text === props.typed;
  return (
    <dialog ref={ref} aria-labelledby="confirm-title" onCancel={props.onCancel}>
      <form
        method="dialog"
        onSubmit={(e) => {
          e.preventDefault();
          if (ok) props.onConfirm();
        }}
      >
        <h2 id="confirm-title">{props.title}</h2>
        {props.children}
        {props.typed !== undefined ? (
          <label>
            Type <code>{props.typed}</code> to confirm
            <input value={text} onInput={(e) => setText(e.currentTarget.value)} autoComplete="off" spellcheck={false} />
          </label>
        ) : null}
        <div class="actions">
          <button type="button" onClick={props.onCancel}>
            Cancel
          </button>
          <button type="submit" class="danger" disabled={!ok}>
            {props.action}
          </button>
        </div>
      </form>
    </dialog>
  );
}

export function Field(props: { label: string; children: ComponentChildren; hint?: string }) {
  return (
    <label class="field">
      <span>{props.label}</span>
      {props.children}
      {props.hint ? <small class="muted">{props.hint}</small> : null}
    </label>
  );
}

/** Comma- or space-separated names as a list. */
export const names = (text: string) => text.split(/[\s,]+/).filter(Boolean);
