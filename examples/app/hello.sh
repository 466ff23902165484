#!/bin/sh
echo "$GREETING"
ls /home/app/site
