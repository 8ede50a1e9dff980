"""Finding seed files and reading each into the text it is indexed from (txt/md, PDF, HTML, DOCX)."""
