#!/usr/bin/env node
// The installed `hearth` command. It lives outside dist/ so that npm can link it at install time,
// before the first build has produced dist/main.js.
import '../dist/main.js';
