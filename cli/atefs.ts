#!/usr/bin/env node
import { main } from './atefs-main.js';
main(process.argv.slice(2));
