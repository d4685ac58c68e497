# Draws -v s=TEXT in 5x5 block letters, "#" cells in reverse video, 13 letters a line, 2 lines at most.
# Font lines are "<char>:<row1>|<row2>|<row3>|<row4>|<row5>".
{ glyph[substr($0, 1, 1)] = substr($0, 3) }
END {
  s = tolower(s)
  for (start = 1; start <= length(s) && start <= 26; start += 13) {
    part = substr(s, start, 13)
    for (row = 1; row <= 5; row++) {
      line = "   "
      for (i = 1; i <= length(part); i++) {
        c = substr(part, i, 1)
        split((c in glyph) ? glyph[c] : glyph["?"], rows, "|")
        line = line rows[row] " "
      }
      gsub(/#/, "\033[7m \033[27m", line)
      print line
    }
    print ""
  }
}
