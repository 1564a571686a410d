// Imported once before the function's code: see code-cache.ts.
