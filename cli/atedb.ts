#!/usr/bin/env node
import { main } from './atedb-main.js';
main(process.argv.slice(2));
