// The UI toolkit: Preact with hooks, written with htm's tagged templates
// (no build step; the vendored modules are loaded through the import map).
import { h, render, Fragment, createContext } from 'preact';
import { useState, useEffect, useRef, useMemo, useCallback, useContext, useId } from 'preact/hooks';
import htm from 'htm';

export const html = htm.bind(h);
export { h, render, Fragment, createContext, useState, useEffect, useRef, useMemo, useCallback, useContext, useId };
